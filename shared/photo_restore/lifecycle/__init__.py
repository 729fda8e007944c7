"""A photo's life outside a restoration: direct upload to S3 with checksum dedup and its ingest,
the user's gallery, archive, unarchive, delete and erasure.

It owns the uploads table and every removal of a photo's objects; it calls the repository's
transactions (photos, attempts), storage's key patterns, status's table and the event bus.
No imports here: the API's cold start loads only the modules a route uses.
"""
