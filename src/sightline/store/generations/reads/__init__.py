"""What is read of generations, runs and chats: pages of rows (queries, listing, ordering), totals,
analytics, export, runs and chats. The write side (records, ingest, rollups, search) is the package's own."""
