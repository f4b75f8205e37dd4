"""Core: types, settings and errors every layer shares. Imports nothing of ours."""
