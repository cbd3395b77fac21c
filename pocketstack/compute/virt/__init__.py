"""Virt drivers: what a compute host uses to run guests (the fake one today, QEMU/KVM next)."""
