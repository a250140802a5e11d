"""The three wire formats: everything format-specific lives here."""
