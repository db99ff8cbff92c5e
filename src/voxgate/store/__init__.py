"""Where state lives: users, API keys, personas, conversations and their turns (SQLAlchemy 2)."""
