"""Vector search: one FAISS index per (app, group). Knows vectors and ids, not users or HTTP."""
