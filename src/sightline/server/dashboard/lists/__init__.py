"""The dashboard's data pages: generations, runs and chats, end users, saved views and bulk actions."""
