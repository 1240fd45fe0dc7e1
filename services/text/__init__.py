"""The text layer shared by ingest, threading and policy.

Normalisation (`normalise`), script and language detection (`script`), the per-language word
lists and phrase tables (`lexicon`, data in ``data/<lang>.json``) and tokenisation. Services
import from here, never from each other, so that "what is a stop word in Korean" has one answer.
"""
