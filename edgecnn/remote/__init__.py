"""Benchmarks on devices reached over SSH (``edgecnn bench --remote``). Torch-free.

ssh.py       the system OpenSSH client: targets, one multiplexed connection per device, fault causes
agent.py     the small stdlib-only script that runs ON the device (probe, upload, install, run)
wheel.py     the torch-free wheel of this checkout and the source fingerprint both sides compare
device.py    preparing one device: Python check, edgecnn install/version check, content-addressed upload
fleet.py     several devices at once: progress lines, the remote bench, rows merged under each device
"""
