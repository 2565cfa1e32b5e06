"""Snapdragon chipset profiles (JSON), shipped inside the package as edgefusion_export.profiles."""
