"""`python -m ged.cli ...`: what `ged serve` runs its children with."""

from . import main

main()
