"""staging_dir against a real unprivileged user (nobody) on this machine: whatever they pre-create or
can write to is refused, nothing of theirs is chmodded or followed; a fresh directory is root's alone;
what a killed copy left is removed by the next run, what a running copy writes is kept."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
import uuid

import pytest

NOBODY = 65534


def as_nobody(*argv):
    """Run a command as the unprivileged user, as a hostile local user would."""
    subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups", "--"] + list(argv), check=True)


@pytest.fixture()
def base():
    """A root-owned 0755 directory under /var/lib (every parent root's and not writable by others)."""
    path = "/var/lib/fi-stage-test-%s" % uuid.uuid4().hex[:8]
    os.mkdir(path, 0o755)
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def snapshot(path):
    info = os.lstat(path)
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode), sorted(os.listdir(path)) if stat.S_ISDIR(info.st_mode) else None


def staging(module_runner, path, **params):
    return module_runner("staging_dir", dict(path=path, directories=["images", "tmp"], clean=["tmp"], **params))


def test_a_fresh_directory_is_made_root_only_and_a_second_run_changes_nothing(base, module_runner):
    path = os.path.join(base, "fleet-images", "staging")
    result = staging(module_runner, path)
    assert not result["failed"] and result["changed"], result
    assert result["created"] == [path, path + "/images", path + "/tmp"]
    for directory in (os.path.dirname(path), path, path + "/images", path + "/tmp"):
        info = os.lstat(directory)
        assert info.st_uid == 0 and stat.S_IMODE(info.st_mode) == 0o700, directory
    again = staging(module_runner, path)
    assert not again["failed"] and not again["changed"] and again["created"] == [] and again["removed"] == []


def test_check_mode_makes_nothing(base, module_runner):
    path = os.path.join(base, "staging")
    result = module_runner("staging_dir", dict(path=path, directories=["tmp"]), check_mode=True)
    assert result["changed"] and not os.path.lexists(path)


def test_a_directory_the_user_pre_created_is_refused_and_left_as_it_is(base, module_runner):
    # the parent lets the user in (as /var/tmp does): they make the staging directory first
    os.chmod(base, 0o1777)
    path = os.path.join(base, "staging")
    as_nobody("mkdir", "-m", "0777", path)
    as_nobody("mkdir", "-m", "0777", path + "/images")
    before = snapshot(path), snapshot(path + "/images")
    result = staging(module_runner, path)
    assert result["failed"] and path in result["msg"] and "refusing to use it" in result["msg"], result
    assert (snapshot(path), snapshot(path + "/images")) == before


def test_a_world_writable_parent_is_refused_even_before_anyone_used_it(base, module_runner):
    os.chmod(base, 0o1777)
    path = os.path.join(base, "staging")
    result = staging(module_runner, path)
    assert result["failed"] and "%s has mode 1777: users other than root may write to it" % base in result["msg"], result
    assert not os.path.lexists(path)


def test_a_directory_owned_by_the_user_is_refused(base, module_runner):
    path = os.path.join(base, "staging")
    os.mkdir(path, 0o700)
    os.chown(path, NOBODY, NOBODY)
    result = staging(module_runner, path)
    assert result["failed"] and "%s is owned by uid %d" % (path, NOBODY) in result["msg"], result
    assert snapshot(path) == (NOBODY, NOBODY, 0o700, [])


def test_a_symlink_to_a_directory_of_the_user_is_refused_and_not_followed(base, module_runner):
    theirs = os.path.join(base, "theirs")
    os.mkdir(theirs, 0o755)
    os.chown(theirs, NOBODY, NOBODY)
    as_nobody("mkdir", "-m", "0777", theirs + "/images")
    path = os.path.join(base, "staging")
    os.symlink(theirs, path)
    before = snapshot(theirs), snapshot(theirs + "/images")
    result = staging(module_runner, path)
    assert result["failed"] and "%s is a symbolic link (to %s)" % (path, theirs) in result["msg"], result
    assert (snapshot(theirs), snapshot(theirs + "/images")) == before
    assert not os.path.lexists(theirs + "/tmp")


def test_a_symlink_among_the_parents_is_refused(base, module_runner):
    real = os.path.join(base, "real")
    os.mkdir(real, 0o700)
    os.symlink(real, os.path.join(base, "link"))
    result = staging(module_runner, os.path.join(base, "link", "staging"))
    assert result["failed"] and "%s/link is a symbolic link" % base in result["msg"], result
    assert os.listdir(real) == []


@pytest.mark.parametrize("mode", [0o755, 0o770, 0o701])
def test_a_root_directory_others_may_use_is_refused_not_chmodded(base, module_runner, mode):
    path = os.path.join(base, "staging")
    os.mkdir(path)
    os.chmod(path, mode)
    result = staging(module_runner, path)
    assert result["failed"] and "has mode %04o" % mode in result["msg"], result
    assert stat.S_IMODE(os.lstat(path).st_mode) == mode


def test_a_subdirectory_of_the_user_inside_a_root_staging_directory_is_refused(base, module_runner):
    path = os.path.join(base, "staging")
    os.mkdir(path, 0o700)
    os.mkdir(path + "/tmp", 0o700)
    os.chown(path + "/tmp", NOBODY, NOBODY)
    result = staging(module_runner, path)
    assert result["failed"] and "%s/tmp is owned by uid %d" % (path, NOBODY) in result["msg"], result


def test_a_file_in_place_of_the_directory_is_refused(base, module_runner):
    path = os.path.join(base, "staging")
    with open(path, "w") as handle:
        handle.write("x")
    result = staging(module_runner, path)
    assert result["failed"] and "%s is not a directory" % path in result["msg"], result


def test_relative_or_unnormalized_paths_are_refused(base, module_runner):
    result = staging(module_runner, base + "/a/../staging")
    assert result["failed"] and "absolute, normalized path" in result["msg"], result


def test_what_a_killed_copy_left_is_removed_and_a_running_copy_is_kept(base, module_runner):
    path = os.path.join(base, "staging")
    assert not staging(module_runner, path)["failed"]
    stale = os.path.join(path, "tmp", "ansible-tmp-1700000000.1-1-1")
    running = os.path.join(path, "tmp", "ansible-tmp-1700000000.2-2-2")
    for directory in (stale, running):
        os.mkdir(directory, 0o700)
        with open(os.path.join(directory, "source"), "wb") as handle:
            handle.write(b"\0" * 4096)
    old = time.time() - 2 * 3600
    for entry in (os.path.join(stale, "source"), stale):
        os.utime(entry, (old, old))
    # the running copy's directory is old, but its file is being written now
    os.utime(running, (old, old))
    kept_image = os.path.join(path, "images", "x.tar")
    with open(kept_image, "wb") as handle:
        handle.write(b"x")
    os.utime(kept_image, (old, old))
    checked = module_runner("staging_dir", dict(path=path, directories=["images", "tmp"], clean=["tmp"]), check_mode=True)
    assert checked["changed"] and checked["removed"] == [stale] and os.path.exists(stale)
    result = staging(module_runner, path)
    assert not result["failed"] and result["changed"] and result["removed"] == [stale], result
    assert not os.path.lexists(stale) and os.path.exists(os.path.join(running, "source"))
    # images/ is cleaned only when asked (the role asks unless copies are kept)
    assert os.path.exists(kept_image)
    result = module_runner("staging_dir", dict(path=path, directories=["images", "tmp"], clean=["images", "tmp"]))
    assert result["removed"] == [kept_image] and not os.path.exists(kept_image)


def test_nested_subdirectories_are_made_root_only_and_a_user_s_one_on_the_way_is_refused(base, module_runner):
    path = os.path.join(base, "staging")
    result = module_runner("staging_dir", dict(path=path, directories=["blobs/sha256", "tmp"], clean=["blobs/sha256", "tmp"]))
    assert not result["failed"] and result["created"] == [path, path + "/blobs/sha256", path + "/tmp"], result
    for directory in (path + "/blobs", path + "/blobs/sha256"):
        assert os.lstat(directory).st_uid == 0 and stat.S_IMODE(os.lstat(directory).st_mode) == 0o700, directory
    shutil.rmtree(path + "/blobs")
    os.mkdir(path + "/blobs", 0o777)
    os.chmod(path + "/blobs", 0o777)
    result = module_runner("staging_dir", dict(path=path, directories=["blobs/sha256"]))
    assert result["failed"] and "%s/blobs has mode 0777" % path in result["msg"] and not os.path.exists(path + "/blobs/sha256"), result


@pytest.mark.parametrize("name", ["../escape", "/abs", "blobs/../x", "blobs//x", "."])
def test_subdirectory_names_that_leave_or_blur_the_directory_are_refused(base, module_runner, name):
    result = module_runner("staging_dir", dict(path=os.path.join(base, "staging"), directories=[name]))
    assert result["failed"] and "relative paths of subdirectories" in result["msg"] and not os.path.exists(base + "/staging"), result


def staged(base):
    """A root-only staging directory holding two staged files, as `stage` leaves it."""
    path = os.path.join(base, "staging")
    for directory in ("", "/blobs", "/blobs/sha256", "/images"):
        os.mkdir(path + directory, 0o700)
        os.chmod(path + directory, 0o700)
    for name in ("images/one.tar", "blobs/sha256/ab12"):
        with open(os.path.join(path, name), "w") as handle:
            handle.write("staged")
    return path


def test_remove_takes_all_the_files_in_one_run_and_a_second_run_changes_nothing(base, module_runner):
    path = staged(base)
    names = ["images/one.tar", "blobs/sha256/ab12", "images/never-staged.tar"]
    preview = module_runner("staging_dir", dict(path=path, remove=names), check_mode=True)
    assert preview["changed"] and os.listdir(path + "/images") == ["one.tar"], preview
    result = module_runner("staging_dir", dict(path=path, remove=names))
    assert not result["failed"] and result["changed"], result
    assert result["removed"] == [path + "/images/one.tar", path + "/blobs/sha256/ab12"]
    assert os.listdir(path + "/images") == [] and os.listdir(path + "/blobs/sha256") == []
    again = module_runner("staging_dir", dict(path=path, remove=names))
    assert not again["failed"] and not again["changed"] and again["removed"] == []
    gone = module_runner("staging_dir", dict(path=base + "/never-made", remove=names))
    assert not gone["failed"] and not gone["changed"] and not os.path.lexists(base + "/never-made")


def test_remove_never_follows_a_link_planted_in_the_staging_directory(base, module_runner):
    path = staged(base)
    victims = os.path.join(base, "victims")
    os.makedirs(victims + "/sha256", 0o700)
    for name in ("one.tar", "sha256/ab12"):
        with open(os.path.join(victims, name), "w") as handle:
            handle.write("not staged")
    # a link in place of a staged file, and one in place of a subdirectory on the way
    os.unlink(path + "/images/one.tar")
    os.symlink(victims + "/one.tar", path + "/images/one.tar")
    shutil.rmtree(path + "/blobs")
    os.symlink(victims, path + "/blobs")
    result = module_runner("staging_dir", dict(path=path, remove=["images/one.tar", "blobs/sha256/ab12"]))
    assert result["failed"] and "blobs is a symbolic link or a file, not a directory; refusing" in result["msg"], result
    assert not os.path.lexists(path + "/images/one.tar")
    assert sorted(os.listdir(victims)) == ["one.tar", "sha256"] and os.listdir(victims + "/sha256") == ["ab12"]


@pytest.mark.parametrize("name", ["../victim", "/etc/passwd", "images/../../victim", "images//one.tar", "./images/one.tar", ""])
def test_remove_refuses_a_name_that_is_not_a_plain_relative_path_before_removing_anything(base, module_runner, name):
    path = staged(base)
    with open(os.path.join(base, "victim"), "w") as handle:
        handle.write("not staged")
    result = module_runner("staging_dir", dict(path=path, remove=["images/one.tar", name]))
    assert result["failed"] and "remove takes relative paths" in result["msg"] and repr(name) in result["msg"], result
    assert os.listdir(path + "/images") == ["one.tar"] and os.path.exists(os.path.join(base, "victim"))


def test_remove_refuses_a_directory_and_an_untrusted_staging_directory(base, module_runner):
    path = staged(base)
    result = module_runner("staging_dir", dict(path=path, remove=["images"]))
    assert result["failed"] and "images is a directory" in result["msg"] and os.path.isdir(path + "/images"), result
    os.chmod(path, 0o777)
    result = module_runner("staging_dir", dict(path=path, remove=["images/one.tar"]))
    assert result["failed"] and "refusing to use it" in result["msg"] and os.path.exists(path + "/images/one.tar"), result
