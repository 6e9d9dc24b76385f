"""The tamper-evident audit log: who touched which patient's data, and proof of it.

The modules here are the pure, offline core. They turn an audit event into
canonical bytes (``canonical``), fold those bytes into an RFC 9162 Merkle tree
(``merkle``), sign the tree head as a C2SP checkpoint (``checkpoint``), and let a
practice check an exported archive with nothing but the file and the log's public
key (``offline_verify``). Nothing here imports the database, web or API packages,
so an auditor can run the verifier without a Perpetua installation's secrets.
"""
