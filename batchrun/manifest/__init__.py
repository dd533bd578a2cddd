"""Manifest v1 and scope files: YAML in, validated frozen specs out."""
