# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a bundle image's platform is the one a Docker Engine runs, and what to do when it is not.

An engine loads (or pulls) an image of any architecture without a word; its containers then fail
with "exec format error". The bundle records each image's os/architecture/variant (from its
config); the engine says what it runs in ``docker info`` (``OSType``, ``Architecture`` as uname
prints it: ``x86_64``, ``aarch64``), normalized here to the names image configs use (``amd64``,
``arm64``). image_load and image_pull ask :func:`verdict` before touching an image.
"""

from __future__ import annotations

# uname -m (and a few distribution) names -> (architecture, variant) as image configs and OCI name them
ARCHITECTURES = {
    "x86_64": ("amd64", None), "x86-64": ("amd64", None), "amd64": ("amd64", None),
    "aarch64": ("arm64", None), "arm64": ("arm64", None), "armv8l": ("arm", "v8"),
    "armv7l": ("arm", "v7"), "armhf": ("arm", "v7"), "armv6l": ("arm", "v6"), "armel": ("arm", "v6"),
    "i386": ("386", None), "i686": ("386", None), "386": ("386", None),
    "ppc64el": ("ppc64le", None), "ppc64le": ("ppc64le", None), "s390x": ("s390x", None),
    "riscv64": ("riscv64", None), "loongarch64": ("loong64", None), "mips64el": ("mips64le", None),
}
# What a host does with a bundle image of another platform (option platform_mismatch).
MODES = ("fail", "skip", "load")


def normalize(os_name, architecture, variant=None):
    """(os, architecture, variant) in image-config words, lower case; variant only where it matters (arm)."""
    arch = (architecture or "").strip().lower()
    arch, implied = ARCHITECTURES.get(arch, (arch, None))
    variant = (variant or implied or "").strip().lower() or None
    return (os_name or "").strip().lower(), arch, variant if arch == "arm" else None


def text(platform):
    """linux/arm/v7 style."""
    return "/".join(part for part in platform if part)


def engine_platform(info):
    """The platform an engine runs, from its ``docker info`` dict."""
    return normalize(info.get("OSType"), info.get("Architecture"))


def image_platform(entry):
    """The platform a bundle entry records, or None when it records no architecture (nothing to compare)."""
    if not entry.get("architecture"):
        return None
    return normalize(entry.get("os") or "linux", entry["architecture"], entry.get("variant"))


def runs_on(image, engine):
    """Whether an engine of platform `engine` runs containers of an image of platform `image`.

    Same os and architecture; for 32-bit arm, the image's variant must not be newer than the
    engine's (a v7 host runs v6 images, not the reverse); an unknown variant is not held against it.
    """
    if image[:2] != engine[:2]:
        return False
    if image[2] and engine[2]:
        return image[2] <= engine[2]
    return True


def verdict(entry, info, mode, engine_name):
    """None when the image may go onto this engine; else (action, message): ("failed", why and what to do) or ("unchanged", why skipped).

    `mode` is the option platform_mismatch: fail (refuse, naming both platforms), skip (leave the
    image out and say so) or load (no check: a host that only relays images, as the registry host).
    """
    wanted = image_platform(entry)
    if mode == "load" or wanted is None:
        return None
    have = engine_platform(info)
    if not have[1] or runs_on(wanted, have):
        return None
    reference = (entry.get("references") or [entry.get("image_id")])[0]
    engine = "the Docker Engine of host %s (%s)" % (info.get("Name") or "?", engine_name)
    if mode == "skip":
        return "unchanged", "skipped: %s is built for %s and %s runs %s (platform_mismatch: skip)" % (
            reference, text(wanted), engine, text(have))
    return "failed", (
        "%s is built for %s, but %s runs %s: it would load, and its containers would fail with 'exec format error'. "
        "Nothing was loaded for it. Bundle the %s variant of the image (image_save platform: %s), leave it out of this "
        "host's images (offline_images_images), or let this host skip such images (offline_images_platform_mismatch: skip; "
        "image_load/image_pull platform_mismatch: skip)" % (reference, text(wanted), engine, text(have), text(have), text(have)))
