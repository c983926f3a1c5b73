"""N-style training from random init on the demo data: the analysis behind README.md here."""
