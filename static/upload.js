// Drag-and-drop multi-file upload with one progress bar per file.
// Each file is its own request, so one refused file does not block the others.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) return;
  var list = document.getElementById("upload-progress");
  var submit = document.getElementById("upload-submit");
  var token = form.querySelector("input[name=csrf_token]").value;
  var maxBytes = parseInt(form.dataset.maxMb, 10) * 1024 * 1024;
  if (submit) submit.hidden = true;  // with scripts, choosing files uploads them at once

  function row(file) {
    var li = document.createElement("li");
    var name = document.createElement("span");
    name.textContent = file.name;
    var bar = document.createElement("progress");
    bar.max = 100; bar.value = 0;
    bar.setAttribute("aria-label", "Envoi de " + file.name);
    li.appendChild(name); li.appendChild(bar);
    list.appendChild(li);
    return {li: li, bar: bar};
  }

  function fail(r, message) {
    var p = document.createElement("span");
    p.className = "error"; p.setAttribute("role", "alert");
    p.textContent = message;
    r.bar.remove(); r.li.appendChild(p);
  }

  function send(file) {
    return new Promise(function (resolve) {
      var r = row(file);
      if (file.size > maxBytes) { fail(r, file.name + " : le fichier dépasse la taille maximale."); return resolve(false); }
      var data = new FormData();
      data.append("csrf_token", token);
      data.append("file", file, file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRFToken", token);
      xhr.upload.onprogress = function (e) { if (e.lengthComputable) r.bar.value = Math.round(100 * e.loaded / e.total); };
      xhr.onload = function () {
        if (xhr.status === 201) {
          r.bar.value = 100;
          var ok = document.createElement("span"); ok.className = "done"; ok.textContent = "Déposé";
          r.bar.replaceWith(ok);
          // A file kept with a caveat (a PDF protected by a password): say so beside it.
          try {
            (JSON.parse(xhr.responseText).warnings || []).forEach(function (text) {
              var w = document.createElement("span");
              w.className = "warning"; w.setAttribute("role", "status"); w.textContent = text;
              r.li.appendChild(w);
            });
          } catch (e) { /* no warnings */ }
          resolve(true);
        } else {
          var msg = "Refusé";
          try { msg = JSON.parse(xhr.responseText).error.message; } catch (e) { /* keep default */ }
          fail(r, file.name + " : " + msg);
          resolve(false);
        }
      };
      xhr.onerror = function () { fail(r, file.name + " : échec de l'envoi (réseau)."); resolve(false); };
      xhr.send(data);
    });
  }

  function sendAll(files) {
    var jobs = Array.prototype.map.call(files, send);
    Promise.all(jobs).then(function (results) {
      if (results.some(Boolean)) {
        // Refresh the document list while keeping refused files' messages visible.
        fetch(window.location.href, {credentials: "same-origin"}).then(function (resp) { return resp.text(); }).then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("documents");
          var table = document.getElementById("documents");
          if (fresh && table) table.replaceWith(fresh);
        });
      }
    });
  }

  // The file chooser and the camera (phones) feed the same uploader.
  form.querySelectorAll("input[type=file]").forEach(function (field) {
    field.addEventListener("change", function () {
      if (field.files.length) sendAll(field.files);
      field.value = "";
    });
  });
  ["dragenter", "dragover"].forEach(function (ev) {
    form.addEventListener(ev, function (e) { e.preventDefault(); form.classList.add("dragover"); });
  });
  ["dragleave", "drop"].forEach(function (ev) {
    form.addEventListener(ev, function (e) { e.preventDefault(); form.classList.remove("dragover"); });
  });
  form.addEventListener("drop", function (e) { if (e.dataTransfer && e.dataTransfer.files.length) sendAll(e.dataTransfer.files); });
})();
