"""Deployment proofs: images, charts, Tiltfile and chart <-> process conformance, offline."""
