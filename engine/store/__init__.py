"""Storage: the only package that speaks SQL (SQLAlchemy 2.x; SQLite by default, PostgreSQL too)."""
