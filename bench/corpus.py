"""Seeded, reproducible corpora: PDFs to deposit, scanned pages to OCR, and a
French-vocabulary document collection to search. Nothing is downloaded; the same
seed gives the same bytes on every run.
"""

from __future__ import annotations

import io
import random
import unicodedata
from functools import lru_cache
from pathlib import Path

SEED = 20260101
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

# Real French words, most frequent first: function words, then the vocabulary of
# an accounting firm's documents (invoices, statements, payslips, tax forms).
# The long tail of the vocabulary is made of pronounceable generated words.
FRENCH = """
de la le et les des en un une du pour par au sur est à dans avec ce qui que ne pas il
elle nous vous ils sont été être avoir fait plus son sa ses leur aux cette tout tous
facture montant total date client fournisseur paiement règlement échéance taxe
société entreprise numéro adresse compte banque virement prélèvement relevé solde
crédit débit commande livraison article quantité prix unitaire remise escompte
hors tva ttc acompte avoir devis bon reçu note frais déplacement repas hôtel
kilomètres carburant péage parking transport train avion taxi location véhicule
salaire bulletin cotisation sociale urssaf retraite prévoyance mutuelle congés
heures supplémentaires prime indemnité contrat travail embauche démission licenciement
impôt déclaration fiscale résultat exercice bilan comptable grand livre journal
écriture immobilisation amortissement provision stock inventaire charges produits
chiffre affaires marge bénéfice perte capital réserve dividende associé gérant
président assemblée générale statuts greffe kbis siren siret ape tribunal commerce
loyer bail locaux électricité énergie gaz eau téléphone internet abonnement assurance
sinistre expertise honoraires avocat notaire commissaire comptes cabinet conseil
mission lettre engagement budget prévisionnel trésorerie emprunt prêt intérêts
échéancier caution garantie nantissement hypothèque leasing crédit-bail matériel
informatique logiciel licence maintenance réparation entretien fournitures bureau
papeterie affranchissement courrier publicité marketing salon cadeaux réception
formation séminaire cotisations professionnelles redevance brevet marque franchise
export import douane transitaire fret emballage palette entrepôt logistique
boulangerie pâtisserie restaurant garage menuiserie plomberie électricien coiffure
pharmacie librairie fleuriste boucherie épicerie traiteur architecte médecin
janvier février mars avril mai juin juillet août septembre octobre novembre décembre
premier deuxième troisième trimestre semestre annuel mensuel hebdomadaire
rappel relance mise demeure contentieux litige recouvrement créance dette
rapprochement lettrage pointage justificatif pièce original copie duplicata
signature cachet visa validation approbation refus rejet correction modification
paris lyon marseille toulouse bordeaux nantes lille strasbourg rennes nice
rue avenue boulevard place chemin route allée impasse quai cours
""".split()

FUNCTION_WORDS = 42  # the first words of FRENCH: articles, pronouns, auxiliaries

SYLLABLES = ("ba be bi bo bu ca ce ci co cu da de di do du fa fe fi fo la le li lo lu "
             "ma me mi mo mu na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su "
             "ta te ti to tu va ve vi vo an en in on ou oi eau é è ch gn qu tr pl br cr "
             "gr fl st").split()


@lru_cache(maxsize=None)
def vocabulary(size: int = 30000) -> tuple[list[str], list[float]]:
    """A French-looking vocabulary with Zipf cumulative weights (most frequent first)."""
    rng = random.Random(SEED)
    words = list(dict.fromkeys(FRENCH))
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen and len(word) > 3:
            seen.add(word)
            words.append(word)
    cumulative, total = [], 0.0
    for rank in range(1, len(words) + 1):
        total += 1.0 / rank
        cumulative.append(total)
    return words, cumulative


def fold(word: str) -> str:
    """Lowercase without accents ("relevé" -> "releve")."""
    return "".join(c for c in unicodedata.normalize("NFKD", word.lower())
                   if not unicodedata.combining(c))


def document_text(index: int, words: int = 300) -> str:
    """The text of search document ``index``: ~``words`` words, French vocabulary."""
    vocab, cumulative = vocabulary()
    rng = random.Random(SEED * 7919 + index)
    picked = rng.choices(vocab, cum_weights=cumulative, k=words)
    sentences = []
    for start in range(0, len(picked), 12):
        chunk = picked[start:start + 12]
        sentences.append(chunk[0].capitalize() + " " + " ".join(chunk[1:]) + ".")
    return f"Facture n° F{index:06d}. " + " ".join(sentences)


def company_of(index: int, companies: int) -> int:
    """Which of the firm's companies search document ``index`` belongs to."""
    return random.Random(SEED * 104729 + index).randrange(companies)


def search_queries(rng: random.Random, count: int, docs: int) -> dict[str, list[tuple]]:
    """Query strings by kind: one word, two words, an "exact phrase", a prefix*; each
    with the index of the document it was taken from (phrases), else None.

    Words come from ranks 20-600 of the vocabulary (real content words, present
    in a few percent to most of the documents); phrases are pairs of content words
    taken from real documents among the first ``docs``, so each has hits."""
    vocab, _ = vocabulary()
    content = set(FRENCH[FUNCTION_WORDS:])
    real = [w for w in vocab[20:600] if w in content and len(w) >= 4 and "-" not in w]
    queries: dict[str, list[tuple]] = {"one word": [], "two words": [], "phrase": [],
                                       "prefix": []}
    for _ in range(count):
        queries["one word"].append((rng.choice(real), None))
        queries["two words"].append((" ".join(rng.sample(real, 2)), None))
        source = rng.randrange(min(docs, 1000))
        words = [w.strip(".").lower() for w in document_text(source).split()[3:]]
        while True:
            i = rng.randrange(len(words) - 1)
            if words[i] in content and words[i + 1] in content:
                break
        queries["phrase"].append((f'"{words[i]} {words[i + 1]}"', source))
        queries["prefix"].append((rng.choice([w for w in real if len(w) >= 6])[:4] + "*", None))
    return queries


# --- PDFs -----------------------------------------------------------------------------


def text_pdf(text: str) -> bytes:
    """A small PDF with a text layer (one page)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.add_font("dejavu", fname=FONT)
    pdf.set_font("dejavu", size=12)
    pdf.multi_cell(0, 7, text)
    return bytes(pdf.output())


@lru_cache(maxsize=None)
def invoice_pdf(target_bytes: int = 200_000) -> bytes:
    """A PDF of about ``target_bytes``: two pages of invoice text and a scanned-looking
    logo (incompressible noise), like a supplier's invoice with its letterhead."""
    from fpdf import FPDF
    from PIL import Image

    rng = random.Random(SEED + 1)
    text = document_text(1, 250)
    side = 64
    for _attempt in range(6):
        img = Image.frombytes("L", (side, side), rng.randbytes(side * side))
        buf = io.BytesIO()
        img.save(buf, "PNG")
        pdf = FPDF()
        pdf.add_font("dejavu", fname=FONT)
        for page in range(2):
            pdf.add_page()
            if page == 0:
                pdf.image(buf, x=150, y=10, w=40)
            pdf.set_font("dejavu", size=10)
            pdf.multi_cell(0, 5, text)
        data = bytes(pdf.output())
        if abs(len(data) - target_bytes) < target_bytes * 0.03:
            return data
        # the noise image dominates the size: scale its area to the missing bytes
        missing = target_bytes - (len(data) - side * side)
        side = max(16, int(max(missing, 256) ** 0.5))
    return data


def variant(pdf: bytes, index: int) -> bytes:
    """The same PDF with distinct bytes (a trailing comment), so each upload is a new blob."""
    return pdf + b"\n%bench-variant " + str(index).encode() + b"\n"


# --- scanned pages ------------------------------------------------------------------------


def scanned_pages(count: int, out_dir: Path, dpi: int = 300,
                  line_count: int = 38) -> tuple[list[Path], list[str]]:
    """``count`` A4 pages of French text (``line_count`` lines of 9 words) rendered at ``dpi``
    as grayscale PNGs, like a scanner's output; returns their paths and their text."""
    from PIL import Image, ImageDraw, ImageFont

    out_dir.mkdir(parents=True, exist_ok=True)
    width, height = int(8.27 * dpi), int(11.69 * dpi)
    font = ImageFont.truetype(FONT, int(11 / 72 * dpi))  # 11 pt
    real = [w for w in FRENCH if len(w) > 2]
    paths, texts = [], []
    for page in range(count):
        rng = random.Random(SEED * 31 + page)
        img = Image.new("L", (width, height), 250)
        draw = ImageDraw.Draw(img)
        lines = [f"Relevé de compte n° {page + 1:04d} — Banque Populaire — page {page + 1}"]
        for _ in range(line_count):
            lines.append(" ".join(rng.choice(real) for _ in range(9)).capitalize())
        y = int(0.8 * dpi)
        for line in lines:
            draw.text((int(0.8 * dpi), y), line, fill=20, font=font)
            y += int(font.size * 1.6)
        path = out_dir / f"page-{page + 1:02d}.png"
        img.save(path, "PNG", dpi=(dpi, dpi))
        paths.append(path)
        texts.append("\n".join(lines))
    return paths, texts


def scanned_pdf(pages: list[Path], dpi: int = 300) -> bytes:
    """An image-only PDF (no text layer) of the page images, embedded losslessly."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="A4")
    for path in pages:
        pdf.add_page()
        pdf.image(str(path), x=0, y=0, w=pdf.w, h=pdf.h)
    return bytes(pdf.output())
