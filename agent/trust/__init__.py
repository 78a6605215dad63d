"""Keys, signatures and signed bundles: who may change a device, and how the device proves what it sent.

``keys`` (operators' keys, trust lists, the device key), ``packages`` (signed listings of model and
firmware packages), ``bundle`` (a firmware bundle's checks), ``commands`` (signed MQTT commands).
"""
