# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_save's entry point: check the options, save in the format asked for (bundle_save.py or bundle_save_v2.py), exit or fail."""

from __future__ import annotations

import os
import traceback

from ansible_collections.fleet.images.plugins.module_utils.bundle import BundleError
from ansible_collections.fleet.images.plugins.module_utils.bundle_save import save_images
from ansible_collections.fleet.images.plugins.module_utils.bundle_save_v2 import save_images_v2
from ansible_collections.fleet.images.plugins.module_utils.compression import CompressionError
from ansible_collections.fleet.images.plugins.module_utils.docker_client import (
    DockerException,
    RequestException,
    connect,
    docker_error_message,
    docker_host_from,
)
from ansible_collections.fleet.images.plugins.module_utils.engine_io import TransferError
from ansible_collections.fleet.images.plugins.module_utils.reference import InvalidReference


def save_by_version(module, client, dest):
    """save_images (format_version 1) or save_images_v2 (2: gzip layers unless compression says none or zstd)."""
    params = module.params
    if params["format_version"] == 1:
        if params["base"]:
            raise BundleError("base makes a differential bundle, which only format_version 2 can be: set format_version: 2")
        return dict(save_images(
            client, dest, params["images"], compression=params["compression"] or "zstd", level=params["compression_level"],
            pull=params["pull"], platform=params["platform"], force=params["force"], prune=params["prune"],
            check_mode=module.check_mode, engine_name=docker_host_from(params),
        ), format_version=1)
    options = dict(compression=params["compression"] or "gzip", level=params["compression_level"], pull=params["pull"],
                   platform=params["platform"], force=params["force"], prune=params["prune"], base=params["base"])
    return save_images_v2(client, dest, params["images"], options, check_mode=module.check_mode, engine_name=docker_host_from(params))


def run_module(module):
    """image_save: check the options, save, and exit or fail the module."""
    params = module.params
    if not params["images"]:
        module.fail_json(msg="images is empty: give at least one image reference to save")
    dest = os.path.abspath(params["bundle"])
    if os.path.exists(dest) and not os.path.isdir(dest):
        module.fail_json(msg="bundle %s exists and is not a directory: a bundle is a directory" % dest)
    client = connect(module)
    try:
        result = save_by_version(module, client, dest)
    except (TransferError, BundleError, CompressionError, InvalidReference) as exc:
        module.fail_json(msg=str(exc), bundle=dest)
    except (DockerException, RequestException) as exc:
        module.fail_json(msg=docker_error_message(exc, "saving images into %s" % dest), bundle=dest, exception=traceback.format_exc())
    except OSError as exc:
        module.fail_json(msg="cannot write the bundle in %s: %s" % (dest, exc), bundle=dest, exception=traceback.format_exc())
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)
