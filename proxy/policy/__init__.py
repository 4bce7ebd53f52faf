"""Client policy: who a caller is, which tools and data it may reach, and what each severity does."""
