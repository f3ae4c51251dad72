#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_save
short_description: Save Docker images into a checksummed, compressed bundle directory
version_added: 0.1.0
description:
  - Writes images from a Docker Engine into a bundle directory that can be carried into a site with no network,
    and loaded there with M(fleet.images.image_load).
  - With O(format_version=1) (the default), one tarball per image under C(images/), uncompressed, gzip or zstd;
    C(bundle.json) records for each image its references, tags, image ID, config digest, repo digests,
    os/architecture, file, size, sha256, compression and when it was saved; C(SHA256SUMS) lists the same checksums
    in the format C(sha256sum -c) reads. The format is described in C(docs/bundle-format.md) of the collection.
  - With O(format_version=2), the bundle is an OCI image layout (C(oci-layout), C(index.json), C(blobs/sha256/));
    every layer, image config and OCI image manifest is stored once, named by its sha256, so images that share a
    base carry it once; C(bundle.json) lists each image's manifest, config and layers. A layer the bundle (or its
    O(base)) already holds is only hashed while the archive streams, never compressed or stored again.
    Blobs are written under a temporary name and linked under their digest when complete; a blob file is never
    rewritten in place; the next save removes blob files an interrupted one left that nothing lists.
  - A bundle directory holds one format; O(format_version) other than the existing bundle's is refused.
  - The engine's archive is streamed to disk through sha256 and the compressor, never held in memory, into a
    temporary file that is renamed only when complete; C(bundle.json) and C(SHA256SUMS) are replaced atomically
    after each image, so an interrupted run keeps every image finished before it.
  - A tarball that replaces an image's old one (the tag moved, the file was damaged, O(force=true)) is written under a
    name no committed entry uses; the old file is removed only after C(bundle.json) and C(SHA256SUMS) list the new
    one. Whatever stops a save (kill, full disk, the tag moving meanwhile), the bundle lists only files that exist
    with the listed checksums, and the next run removes tarballs an interrupted run left unlisted.
  - An image whose ID matches its entry, with the same compression, whose file is present with the recorded size, is
    not saved again; its file is not read either. In a version 2 bundle the same holds when every blob of the image
    is present with its recorded size (or is held by O(base)).
  - References that name the same image share one tarball and one entry.
  - Two runs writing into the same bundle at once wait for each other (a lock on the bundle directory).
extends_documentation_fragment:
  - fleet.images.docker
  - fleet.images.docker.actiongroup_docker
  - fleet.images.docker.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports which images would be written and why, without pulling or writing anything.
      - An image that would have to be pulled first is reported as written, since its ID is not known yet.
  diff_mode:
    support: full
    details:
      - Shows C(bundle.json) before and after. In check mode, checksums and sizes not yet known are shown as placeholders.
  idempotent:
    support: full
    details:
      - A second run with the same images changes nothing, unless an image changed on the engine (for example after
        O(pull=always) brought a newer one), a tarball went missing or changed size, or O(force=true).
options:
  images:
    description:
      - References of the images to save, such as V(nginx:1.25), V(registry.example.com/team/app:2.1) or
        V(registry.example.com/team/app@sha256:...).
      - Tags are restored by M(fleet.images.image_load); an image saved only by digest is loaded without a tag.
    type: list
    elements: str
    required: true
    aliases: [names]
  bundle:
    description:
      - The bundle directory. It is created (with C(images/)) when it does not exist.
      - The same option as O(fleet.images.image_load#module:bundle) and O(fleet.images.bundle_info#module:bundle); V(dest)
        is its former name, kept as an alias.
    type: path
    required: true
    aliases: [dest]
  compression:
    description:
      - How tarballs (O(format_version=1)) or layer blobs (O(format_version=2)) are compressed.
      - When not set, V(zstd) for O(format_version=1) and V(gzip) for O(format_version=2).
      - V(zstd) is several times faster than V(gzip) at a similar size; the hosts that load the bundle then need the
        Python package C(zstandard) (Debian C(python3-zstandard); the bundle's wheels carry it for them), as does the
        host that saves. Docker itself does not need to read zstd, since M(fleet.images.image_load) decompresses.
      - With O(format_version=2), V(zstd) layer blobs (C(application/vnd.oci.image.layer.v1.tar+zstd)) are smaller than
        V(gzip) ones (12 % on the data of the collection's size benchmark) and faster to write. They are an opt-in for
        sites where every engine that pulls from the site registry is Docker 23 or later, since Docker 20.10 can
        neither load nor pull zstd layers. C(playbooks/site.yml) refuses such a bundle with the registry strategy,
        before any change, when a Docker host runs an older engine; the copy strategy (M(fleet.images.image_load))
        loads it on every engine, decompressing the layers itself for engines older than 23.
      - A layer the bundle or its O(base) already holds (same diff_id) is not stored again and keeps its compression,
        whatever this option says; so a differential V(zstd) bundle against a V(gzip) base holds gzip base layers and
        zstd new ones (each layer's media type names its compression, and every reader handles each layer by its own).
        To change the compression of stored layers, save into a new directory.
      - Layer blobs are deterministic. The same layer with the same compression and level (and the same zlib or
        zstandard library) gives the same bytes, so the same digest, on every save.
      - With O(format_version=1), changing it rewrites the tarballs (the files get a new suffix); changing only
        O(compression_level) does not. zstd tarballs are compressed in worker threads (one fewer than the CPUs, at most 4)
        while the engine's archive streams in; layer blobs in one thread.
    type: str
    choices: [none, gzip, zstd]
  compression_level:
    description:
      - Compression level, V(1) to V(9) for gzip (default V(6)), V(1) to V(22) for zstd (default V(3)), for tarballs
        and layer blobs alike.
    type: int
    aliases: [level]
  pull:
    description:
      - V(never) saves only images the engine already has and fails for any other.
      - V(missing) pulls images the engine does not have (or has for another O(platform)).
      - V(always) pulls every image first, so a moved tag is followed; the tarball is rewritten only if the ID changed.
    type: str
    choices: [never, missing, always]
    default: missing
  platform:
    description:
      - The platform to pull and save, such as V(linux/amd64) or V(linux/arm64/v8).
      - An image already present for another platform counts as missing.
    type: str
  force:
    description:
      - Save every image again, even when the bundle already holds it.
      - Also starts a new C(bundle.json) when the existing one cannot be read.
    type: bool
    default: false
  prune:
    description:
      - Remove from the bundle the images not listed in O(images), with their tarballs (or the blobs no other image uses).
    type: bool
    default: false
  format_version:
    description:
      - The bundle format to write, V(1) (one tarball per image) or V(2) (content-addressed blobs, an OCI image layout).
      - An existing bundle of the other version is refused; save into a new directory instead.
    type: int
    choices: [1, 2]
    default: 1
  base:
    description:
      - An earlier O(format_version=2) bundle (its directory or its C(bundle.json)) the site already holds. The bundle
        then carries only the blobs the base lacks, and C(bundle.json)'s C(requires) names the base (sha256 of its
        C(bundle.json)) and every blob taken from it (a differential bundle).
      - Saving again into a differential bundle with another base (or none) is refused unless O(force=true).
      - Only with O(format_version=2).
    type: path
requirements:
  - zstandard (Python), for O(compression=zstd)
notes:
  - Runs where a Docker Engine can reach the images (the connected side); the bundle directory is on the host the
    module runs on.
seealso:
  - module: fleet.images.image_load
  - module: community.docker.docker_image_export
    description: Exports images to a single tar file, without a manifest, checksums or compression.
author:
  - fleet.images contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Save the images a site needs into a bundle on a USB disk
  fleet.images.image_save:
    images:
      - nginx:1.25
      - registry:2
      - registry.example.com/team/app:2.1
    bundle: /media/usb/bundle
    compression: zstd

- name: Follow moved tags, for arm64 hosts, and drop images no longer listed
  fleet.images.image_save:
    images: "{{ site_images }}"
    bundle: /srv/bundles/site-a
    pull: always
    platform: linux/arm64
    prune: true

- name: A content-addressed bundle holding only what last month's bundle lacks
  fleet.images.image_save:
    images: "{{ site_images }}"
    bundle: /srv/bundles/site-a-2026-12
    format_version: 2
    base: /srv/bundles/site-a-2026-11

- name: zstd layers, for a site whose Docker hosts all run Docker 23 or later
  fleet.images.image_save:
    images: "{{ site_images }}"
    bundle: /srv/bundles/site-b
    format_version: 2
    compression: zstd

- name: Uncompressed, from a remote engine over TLS
  fleet.images.image_save:
    images: [registry.example.com/team/app@sha256:4f5b0e2f0c5e2c1ab3d6d5e8b2c1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3]
    bundle: /srv/bundles/app
    compression: none
    docker_host: tcp://build01.example.com:2376
    validate_certs: true
    ca_path: /etc/pki/docker/ca.pem
"""

RETURN = r"""
images:
  description:
    - One item per image (references naming the same image share one), in the order asked; the keys every image
      module returns (RV(images[].reference), RV(images[].references), RV(images[].image_id), RV(images[].action),
      RV(images[].bytes)), then this module's own.
  returned: always
  type: list
  elements: dict
  contains:
    reference:
      description: The first reference given for the image.
      type: str
      sample: nginx:1.25
    references:
      description: Every reference given for the image.
      type: list
      elements: str
      sample: [nginx:1.25, nginx:latest]
    image_id:
      description: The image ID on the engine; null in check mode when the image would be pulled first.
      type: str
      sample: sha256:3f8a4339aadda5897b744682f5f774dc69991a81af8d715d37a616bb4c99edf5
    action:
      description: V(saved) (written into the bundle, or in check mode would be) or V(unchanged).
      type: str
      sample: saved
    bytes:
      description:
        - Bytes this run wrote into the bundle for this image (the tarball, or the blobs it had to add); 0 when unchanged.
        - In check mode, for an image that would be saved, the image's uncompressed size as the engine reports it.
      type: int
      sample: 67012345
    file:
      description: The tarball, relative to O(bundle). Format version 1 only.
      type: str
      sample: images/nginx_1.25-5b0c8a1d2e3f.tar.zst
    path:
      description: The tarball's absolute path. Format version 1 only.
      type: str
      sample: /media/usb/bundle/images/nginx_1.25-5b0c8a1d2e3f.tar.zst
    size:
      description:
        - The tarball's size in bytes (version 1), or the sum of the image's blob sizes (version 2, blobs shared with
          other images counted for each); null in check mode for an image that would be written.
      type: int
      sample: 67012345
    sha256:
      description: The tarball's sha256, as in C(SHA256SUMS); null in check mode for an image that would be written. Version 1 only.
      type: str
      sample: 8e1f7a5b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f
    compression:
      description: V(none), V(gzip) or V(zstd). Version 1 only.
      type: str
      sample: zstd
    manifest:
      description: The digest of the image's OCI image manifest blob. Version 2 only; absent in check mode for an image that would be saved.
      type: str
      sample: sha256:5030f07fb7dd399db158287c81edd32c3022c179375192ac524c1dde122066cb
    blobs:
      description: The digests of the image's blobs (manifest, config, layers in order). Version 2 only, as RV(images[].manifest).
      type: list
      elements: str
      sample: [sha256:5030f07fb7dd399db158287c81edd32c3022c179375192ac524c1dde122066cb]
    pulled:
      description: V(pulled) when this run pulled the image, V(would be pulled) in check mode, else null.
      type: str
      sample: pulled
    reason:
      description: Why the image was saved, or why it was not.
      type: str
      sample: not in the bundle yet
  sample:
    - reference: nginx:1.25
      references: [nginx:1.25]
      image_id: sha256:3f8a4339aadda5897b744682f5f774dc69991a81af8d715d37a616bb4c99edf5
      action: saved
      bytes: 67012345
      file: images/nginx_1.25-5b0c8a1d2e3f.tar.zst
      path: /media/usb/bundle/images/nginx_1.25-5b0c8a1d2e3f.tar.zst
      size: 67012345
      sha256: 8e1f7a5b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f
      compression: zstd
      pulled: null
      reason: not in the bundle yet
removed:
  description:
    - Tarballs deleted because their image now has a new file (a new image ID, other compression) or was pruned,
      and tarballs an interrupted earlier run left that the bundle does not list.
    - In a version 2 bundle, the blob files (C(blobs/sha256/<hex>)) no image references any more, and those an
      interrupted run left.
  returned: always
  type: list
  elements: str
  sample: [images/nginx_1.25-5b0c8a1d2e3f.tar.gz]
pruned:
  description: Tarballs (version 2, manifest blobs) of images removed from the manifest by O(prune=true).
  returned: always
  type: list
  elements: str
  sample: []
format_version:
  description: The format version of the bundle written.
  returned: success
  type: int
  sample: 2
bundle:
  description: The bundle directory (O(bundle)), absolute.
  returned: always
  type: str
  sample: /media/usb/bundle
manifest:
  description: The path of C(bundle.json).
  returned: always
  type: str
  sample: /media/usb/bundle/bundle.json
msg:
  description: A one-line summary.
  returned: always
  type: str
  sample: wrote 1 of 3 image(s) into /media/usb/bundle
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils.image_save_run import run_module
from ansible_collections.fleet.images.plugins.module_utils.docker_args import docker_connection_args


def main():
    module = AnsibleModule(
        argument_spec=docker_connection_args(
            images=dict(type="list", elements="str", required=True, aliases=["names"]),
            bundle=dict(type="path", required=True, aliases=["dest"]),
            compression=dict(type="str", choices=["none", "gzip", "zstd"]),
            compression_level=dict(type="int", aliases=["level"]),
            pull=dict(type="str", choices=["never", "missing", "always"], default="missing"),
            platform=dict(type="str"),
            force=dict(type="bool", default=False),
            prune=dict(type="bool", default=False),
            format_version=dict(type="int", choices=[1, 2], default=1),
            base=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
