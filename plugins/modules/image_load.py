#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_load
short_description: Load Docker images from a bundle after checking their sha256, skipping those already present
version_added: 0.1.0
description:
  - Loads images into a Docker Engine from a bundle directory written by M(fleet.images.image_save), or from a single
    image tarball.
  - An image already in the engine with its recorded tags is skipped without reading its tarball. An image present
    under its identity but missing some recorded tags only gets those tags, again without reading the tarball.
  - B(Version 2 bundles) (content-addressed blobs) - for an image to load, only its config and the layers whose chain
    the engine lacks (found from the engine's images' layers) are needed; the layers it has are left out of the
    archive the engine gets, and their blobs need not be on the host. Every needed blob is opened once and its size
    and sha256 checked against its digest on that descriptor before a byte reaches the engine; a docker-archive is
    then composed on the fly from those same open files and streamed into the engine's load API (no tarball is
    written anywhere). Layer blobs the engine decompresses itself (plain, gzip; zstd on Docker 23 and later) are sent
    as stored, others decompressed on the way. A needed blob absent from O(bundle) (a differential bundle whose base
    never reached the host, or a staging directory missing a file) fails the task before any image is loaded or
    tagged, naming the images and the blobs.
  - Otherwise (version 1) the tarball is checked before anything reaches the engine, first its size against C(bundle.json),
    then its sha256 in one read. The file is opened once (a symbolic link, FIFO, device or directory in its place is
    refused) and the bytes hashed are the bytes loaded, read again from that same open file, so a file swapped
    after the check never reaches the engine. On a missing file, a truncated file or a checksum mismatch, the image fails with a
    message naming the file, the expected and the actual checksum, and no image of that file is loaded. The other
    images are still handled, and the task fails at the end listing every bad file.
  - A checked tarball is decompressed by its content (gzip, zstd or none, recognised by magic bytes, not by file
    name) and streamed into the engine's load API, so a zstd bundle loads on engines that cannot read zstd
    themselves (Docker 20.10). Both the classic docker-archive layout and the OCI layout Docker 25+ writes are read.
  - The recorded tags are restored after loading (C(docker load) keeps only the names inside the archive, and an
    image saved by digest has none).
  - B(Identity), what "already present" compares. An image is present when every tag recorded in C(bundle.json)
    resolves on the engine to the same image, meaning an image whose ID is one of the entry's C(config_digest)
    (the image ID in the classic image store, the sha256 of the image config), C(manifest_digest) (the image ID in
    the containerd image store for an image loaded from an OCI layout) or C(image_id) (the ID on the saving
    engine), or whose config fingerprint equals the entry's C(config_fingerprint) (creation time, platform, layer
    diff IDs, user, environment, command, entrypoint, working directory, labels, ports, volumes and stop signal of
    the image config, as the engine's inspect shows them). The fingerprint keeps images found when the containerd
    image store gives an image loaded from a docker-archive a new ID.
  - An image present under other names only is found by its recorded IDs, or among the engine's images created in
    the same second. Layer (distribution) digests and sizes are not compared, since they differ between storage
    backends. C(docs/bundle-format.md) in the collection gives the exact fingerprint.
  - Before loading, checks that the engine's data root (C(DockerRootDir)) has about twice the image's uncompressed
    size free (the classic store unpacks the whole archive before importing it), plus O(keep_free), and refuses
    with a message giving the needed and the free bytes otherwise.
extends_documentation_fragment:
  - fleet.images.docker
  - fleet.images.docker.actiongroup_docker
  - fleet.images.docker.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports which images would be loaded, tagged or skipped. Tarballs that would be loaded are still checked
        (size, free space and, with O(verify=true), sha256), so check mode also predicts their failures.
      - With O(entries) instead of O(bundle), only the engine is asked and no file is read (none needs to be on the host).
  diff_mode:
    support: full
    details:
      - Shows, for each selected image, the image ID each recorded tag points to before and after.
  idempotent:
    support: full
    details:
      - A second run finds every image present and reads no tarball.
options:
  bundle:
    description:
      - The bundle directory (with C(bundle.json), and C(images/) or C(blobs/sha256/)), or a staging directory holding
        C(bundle.json) and the files RV(load_files) named.
      - Exactly one of O(bundle), O(path) and O(entries) is required.
    type: path
  path:
    description:
      - A single image tarball (uncompressed, gzip or zstd), instead of a bundle.
      - Without a manifest, the file's sha256 is checked first, then the archive is read (with bounds on its member
        count and the size of its JSON documents) to learn which images it holds before deciding whether to load it;
        with a bundle, no read is needed to skip an image.
    type: path
  entries:
    description:
      - The bundle's images as M(fleet.images.bundle_info) returns them (its C(images) list, as it is), instead of
        O(bundle), to learn what each image needs before anything is copied to the host.
      - Only in check mode (the task keyword C(check_mode) set to V(true)); the engine is asked, by the same identity rule as a
        load, and no file is read or needed on the host. Each image comes back in RV(images) with C(action)
        V(unchanged) (present), V(tagged) (present, lacks tags) or V(loaded) (files are needed, listed in its
        RV(images[].files)), and RV(load_files) lists every file to copy to the host once - tarballs, or for a
        version 2 bundle only the blobs of the config and of the layers this engine lacks.
      - Replaces the former module C(fleet.images.bundle_image_info).
    type: list
    elements: dict
  sha256:
    description:
      - The expected sha256 of O(path), as 64 hex digits, optionally prefixed with V(sha256:).
      - When not given and O(verify=true), the checksum is taken from a C(SHA256SUMS) next to the file (or one
        directory up) that lists it; without one the task fails and asks for O(sha256) or O(verify=false).
      - When given, it is always checked, also with O(verify=false).
    type: str
  images:
    description:
      - Load only these images of the bundle, by any reference or tag recorded for them (V(nginx) matches
        V(nginx:latest)). All images when empty.
      - A reference the bundle does not hold is an error that lists what it holds.
    type: list
    elements: str
    default: []
  verify:
    description:
      - Check each tarball's sha256 before loading it. Size and presence are always checked, and so is an O(sha256)
        given explicitly.
    type: bool
    default: true
  force:
    description:
      - Load every selected image even when the engine already has it.
    type: bool
    default: false
  keep_free:
    description:
      - Space that must remain free on the engine's data root after loading, in bytes or with a unit
        (V(512M), V(10G)).
    type: str
    default: "0"
  platform_mismatch:
    description:
      - What to do with a bundle image whose recorded platform (os/architecture/variant, from its config) is not the
        one the engine runs (C(docker info) C(OSType)/C(Architecture), with V(x86_64) read as V(amd64), V(aarch64) as
        V(arm64) and so on). The engine would load it without a word, and its containers would then fail with
        C(exec format error).
      - V(fail) refuses the image, naming the engine's host, the image and both platforms; nothing of it is loaded or
        tagged (the other images are still handled).
      - V(skip) leaves it out; it comes back in RV(images) with C(action) V(unchanged) and a C(reason).
      - V(load) does not compare, for a host that only relays images to others, such as the registry host.
      - Images whose platform the bundle does not record, and lone tarballs (O(path)), are not compared.
    type: str
    choices: [fail, skip, load]
    default: fail
notes:
  - Free space can only be measured when the engine runs on the host the module runs on (a unix socket whose
    engine process is visible from here, which includes an engine in a container reached through a mounted
    socket). For a remote engine (V(tcp://), V(ssh://)) the check is skipped with a warning.
  - When the engine stops answering during a load (it stopped, restarted or crashed), the image fails with a message
    naming the engine and the file; its tags are not restored, and a rerun loads it again.
  - Loading a zstd bundle needs the Python package C(zstandard) (Debian C(python3-zstandard); the
    P(fleet.images.offline_images#role) role installs it from the bundle's wheels) on the host the module runs on;
    without it the task fails before loading and says so. The C(zstd) command line tool is not used.
seealso:
  - module: fleet.images.image_save
  - module: community.docker.docker_image_load
    description: Loads a tar file as it is, without checksum, manifest or skipping of present images.
author:
  - fleet.images contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Load every image of the bundle, skipping those the host has
  fleet.images.image_load:
    bundle: /srv/bundle

- name: Load two images, leaving at least 10 GiB free on the engine's disk
  fleet.images.image_load:
    bundle: /srv/bundle
    images: [nginx:1.25, registry:2]
    keep_free: 10G

- name: Read the bundle on the controller
  fleet.images.bundle_info:
    bundle: /media/usb/bundle
  delegate_to: localhost
  run_once: true
  register: bundle

- name: Before copying anything, ask each host's engine which files (tarballs, or blobs of the layers it lacks) it needs
  fleet.images.image_load:
    entries: "{{ bundle.images }}"
  check_mode: true
  changed_when: false
  register: wanted

- name: Load one tarball copied on its own
  fleet.images.image_load:
    path: /tmp/app.tar.zst
    sha256: 8e1f7a5b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f
"""

RETURN = r"""
images:
  description:
    - Every selected image that was handled, in the bundle's order, with what was done to it (in check mode, what would
      be done). Images that failed are not here but in RV(failed_images).
  returned: always
  type: list
  elements: dict
  contains:
    reference:
      description: The first reference recorded for the image.
      type: str
      sample: nginx:1.25
    references:
      description: The references recorded for the image.
      type: list
      elements: str
      sample: [nginx:1.25]
    image_id:
      description:
        - The image ID on this engine. In check mode, for an image that would be loaded, the recorded config digest;
          with O(entries), null.
      type: str
      sample: sha256:3f8a4339aadda5897b744682f5f774dc69991a81af8d715d37a616bb4c99edf5
    action:
      description:
        - V(loaded), V(tagged) (present, only tags set) or V(unchanged) (present with its tags, nothing read; or an
          image of another platform than the engine's left out by O(platform_mismatch=skip)); in check mode, what a
          real run would do.
      type: str
      sample: loaded
    bytes:
      description:
        - Bytes of bundle files this run sent into the engine for the image - its tarball (version 1), or the blobs of
          its config and of the layers the engine lacked (version 2, as stored); 0 when nothing was sent. In check
          mode (and with O(entries)), what would be sent.
      type: int
      sample: 71234567
    files:
      description:
        - The bundle files (relative to the bundle, or the O(path) given) a load of the image reads - its tarball
          (version 1), or C(blobs/sha256/<hex>) of its config and of each layer the engine lacks (version 2); empty for
          V(tagged) and V(unchanged).
      type: list
      elements: str
      sample: [blobs/sha256/bca1582a2cdbe5c4e6d0b0dc19c6ea4ad1e31f4c7d2c10d49e57e9f2b8a1b6a1]
    tags:
      description: The tags recorded for the image.
      type: list
      elements: str
      sample: [nginx:1.25]
    tags_set:
      description: The tags this run set (or moved) on the engine; in check mode, those it would set.
      type: list
      elements: str
      sample: [nginx:1.25]
    config_digest:
      description: The sha256 of the image config.
      type: str
      sample: sha256:3f8a4339aadda5897b744682f5f774dc69991a81af8d715d37a616bb4c99edf5
    verified:
      description: Whether the files of the image were checked against their sha256 by this run.
      type: bool
      sample: true
    reason:
      description: Why the image was left out; only for an image of another platform (O(platform_mismatch=skip)).
      type: str
      sample: >-
        skipped: app:1 is built for linux/arm64 and the Docker Engine of host node1 (unix:///var/run/docker.sock) runs
        linux/amd64 (platform_mismatch: skip)
  sample:
    - reference: nginx:1.25
      references: [nginx:1.25]
      image_id: sha256:3f8a4339aadda5897b744682f5f774dc69991a81af8d715d37a616bb4c99edf5
      action: loaded
      bytes: 71234567
      files: [images/nginx_1.25-5b0c8a1d2e3f.tar.zst]
      tags: [nginx:1.25]
      tags_set: [nginx:1.25]
      config_digest: sha256:3f8a4339aadda5897b744682f5f774dc69991a81af8d715d37a616bb4c99edf5
      verified: true
load_files:
  description:
    - The bundle files the loads read (in check mode and with O(entries), would read), each once, in order - the
      tarballs (version 1) or the blobs the engine lacks (version 2). With O(entries) this is what to copy to the host.
  returned: always
  type: list
  elements: str
  sample: [images/nginx_1.25-5b0c8a1d2e3f.tar.zst]
bytes:
  description: The sum of RV(images[].bytes).
  returned: always
  type: int
  sample: 71234567
failed_images:
  description: The images that failed, each with why; only when the task failed because of them.
  returned: failure
  type: list
  elements: dict
  contains:
    reference:
      description: The first reference recorded for the image.
      type: str
      sample: nginx:1.25
    references:
      description: The references recorded for the image.
      type: list
      elements: str
      sample: [nginx:1.25]
    error:
      description: Why it failed.
      type: str
      sample: "/srv/bundle/images/nginx_1.25-5b0c8a1d2e3f.tar.zst failed its checksum: expected sha256 8e1f..., actual 0c2b...."
  sample:
    - reference: nginx:1.25
      references: [nginx:1.25]
      error: "/srv/bundle/images/nginx_1.25-5b0c8a1d2e3f.tar.zst failed its checksum: expected sha256 8e1f..., actual 0c2b...."
msg:
  description: A one-line summary, or on failure every failed file with the reason.
  returned: always
  type: str
  sample: loaded 1, tagged 0, left 2 image(s) unchanged
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils.bundle_load import run_module
from ansible_collections.fleet.images.plugins.module_utils.docker_args import docker_connection_args


def main():
    module = AnsibleModule(
        argument_spec=docker_connection_args(
            bundle=dict(type="path"),
            path=dict(type="path"),
            entries=dict(type="list", elements="dict"),
            sha256=dict(type="str"),
            images=dict(type="list", elements="str", default=[]),
            verify=dict(type="bool", default=True),
            force=dict(type="bool", default=False),
            keep_free=dict(type="str", default="0"),
            platform_mismatch=dict(type="str", choices=["fail", "skip", "load"], default="fail"),
        ),
        mutually_exclusive=[("bundle", "path", "entries"), ("bundle", "sha256"), ("path", "images"), ("entries", "images"), ("entries", "sha256")],
        required_one_of=[("bundle", "path", "entries")],
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
