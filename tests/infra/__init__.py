"""Deployment, offline: Bicep, the azd hooks, bindings and settings parity."""
