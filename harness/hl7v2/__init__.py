"""HL7 v2: charsets, the lossless message model, cheap metadata, ACKs, files."""
