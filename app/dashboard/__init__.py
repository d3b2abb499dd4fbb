"""The dashboard: one page at /dashboard and the precomputed data it reads."""
