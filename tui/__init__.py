"""lorad's Textual app. Imports `lorad`; `lorad` never imports this package."""
