"""Git through GitPython: one worktree and branch per experiment, and the reviewed promote.

The user's working tree, index, HEAD and branches are never touched here except by `promote`. Experiments live on
branches `nightlab/<session>/<id>` (refs the user never created) in worktrees under `.nightlab/worktrees/<id>`;
commits carry nightlab's own identity so no git config is needed and attribution is clear.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import git

from nightlab.agent.paths import STATE_DIR, StatePaths
from nightlab.errors import EditError, GitError

AUTHOR = ("nightlab", "nightlab@localhost")


def _identity_env() -> dict[str, str]:
    name, email = AUTHOR
    return {
        "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email,
    }


@dataclass(frozen=True)
class DiffStat:
    files: list[tuple[str, int, int]]  # path, added, removed

    @property
    def added(self) -> int:
        return sum(a for _, a, _ in self.files)

    @property
    def removed(self) -> int:
        return sum(r for _, _, r in self.files)

    def summary(self) -> str:
        return f"{len(self.files)} file(s), +{self.added} -{self.removed}"


def open_repo(root: Path) -> git.Repo:
    """The git repository at root, or a one-line GitError saying what is wrong."""
    root = Path(root)
    if not root.is_dir():
        raise GitError(f"{root}: no such folder")
    try:
        repo = git.Repo(root, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitError(f"{root}: not a git repository (run `git init` and commit your training code first)") from None
    if repo.bare:
        raise GitError(f"{root}: a bare repository has no working tree")
    try:
        _ = repo.head.commit
    except ValueError:
        raise GitError(f"{root}: the repository has no commits yet; commit your training code first") from None
    return repo


def _write_inside(wt: Path, rel: str, text: str) -> None:
    """Write `wt/rel` without following a link at any component: a folder or file that is a link (tracked, or made
    by anyone) is refused with EditError naming it, never written through."""
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts:
        raise EditError(f"{rel}: not a path inside the worktree")
    cur = wt
    for part in parts[:-1]:
        cur = cur / part
        if cur.is_symlink():
            raise EditError(f"{rel} passes through the symbolic link {cur.relative_to(wt)} -> {os.readlink(cur)}; "
                            "nightlab never edits through a symbolic link")
        cur.mkdir(exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(wt / rel, flags, 0o644)
    except OSError as e:
        if e.errno == 40:  # ELOOP: the file itself is a link
            raise EditError(f"{rel} is the symbolic link {rel} -> {os.readlink(wt / rel)}; nightlab never edits "
                            "through a symbolic link") from None
        raise
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _through_link(wt: Path, rel: str) -> bool:
    """Whether a folder on the way to `wt/rel` is a symbolic link (or `rel` leaves the worktree)."""
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts:
        return True
    cur = wt
    for part in parts[:-1]:
        cur = cur / part
        if cur.is_symlink():
            return True
    return False


def worktree_git_env(common_dir: Path, wt: Path) -> dict[str, str] | None:
    """GIT_DIR and GIT_WORK_TREE for git in an experiment's worktree, naming the admin folder the repository
    registered for it (`.git/worktrees/<name>`), or None when the repository registered no worktree there.

    Never git through the worktree's own `.git`: the job may write its worktree, and a `.git` it replaced by
    `gitdir: <a folder of its own>` brings that folder's config along — `core.fsmonitor = <command>` runs the
    command as the user, outside every confinement layer, at the next `git status` nightlab runs there (and a
    promisor remote's `uploadpack` at the next object read). The admin folder and its `gitdir` file are in the
    repository's own `.git`, which no job can write."""
    # compared as folders, links resolved: the worktree folder is nightlab's (a job cannot replace it), while its
    # `.git` may be anything, so the path is never resolved through it
    folder = os.path.realpath(wt)
    admin_root = Path(common_dir) / "worktrees"
    try:
        entries = sorted(admin_root.iterdir())
    except OSError:
        return None
    for admin in entries:
        try:
            registered = (admin / "gitdir").read_text().strip()
        except OSError:
            continue
        if registered and os.path.basename(registered) == ".git" and \
                os.path.realpath(os.path.dirname(os.path.abspath(registered))) == folder:
            return {"GIT_DIR": str(admin), "GIT_WORK_TREE": folder}
    return None


def _one_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    useful = [ln for ln in lines if ln.startswith(("stderr:", "fatal:", "error:"))] or lines
    return (useful[-1] if useful else type(err).__name__)[:300].replace("stderr: ", "").strip("'")


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.repo = open_repo(self.root)
        top = Path(self.repo.working_tree_dir or self.root).resolve()
        if top != self.root:
            raise GitError(f"{self.root}: inside the repository at {top}; run nightlab from the repository root")
        self.paths = StatePaths.of(self.root)
        self.state_dir = self.paths.dir
        self.worktrees = self.paths.worktrees

    # ------------------------------------------------------------------------------------------- setup
    def ensure_state_dir(self) -> Path:
        """Create .nightlab/ and exclude it through .git/info/exclude (the user's .gitignore is not edited)."""
        self.state_dir.mkdir(exist_ok=True)
        exclude = Path(self.repo.git_dir) / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        line = f"/{STATE_DIR}/"
        text = exclude.read_text() if exclude.exists() else ""
        if line not in text.splitlines():
            with open(exclude, "a") as f:
                f.write(("" if text.endswith("\n") or not text else "\n") + line + "\n")
        return self.state_dir

    def head_commit(self) -> str:
        return self.repo.head.commit.hexsha

    def current_branch(self) -> str | None:
        try:
            return self.repo.active_branch.name
        except TypeError:
            return None

    def dirty_paths(self, paths: Iterable[str] | None = None) -> list[str]:
        """Paths with uncommitted changes (staged, unstaged or untracked), limited to `paths` when given."""
        args = ["--porcelain=v1", "-z", "--untracked-files=all"]
        if paths is not None:
            plist = list(paths)
            if not plist:
                return []
            args += ["--", *plist]
        out = self.repo.git.status(*args)
        result = []
        for entry in out.split("\0"):
            if len(entry) > 3:
                result.append(entry[3:])
        return [p for p in result if not p.startswith(STATE_DIR + "/")]

    def tracked_files(self, commit: str | None = None) -> list[str]:
        """The paths tracked at `commit` (HEAD); a GitError naming the commit when it cannot be read."""
        try:
            out = self.repo.git.ls_tree("-r", "--name-only", "-z", commit or "HEAD")
        except git.GitCommandError as err:
            raise GitError(f"commit {(commit or 'HEAD')[:12]} cannot be read: {_one_line(err)}") from None
        return [p for p in out.split("\0") if p]

    def tree_of(self, commit: str) -> str | None:
        """The id of a commit's tree (equal trees hold exactly the same files), None for an unknown commit."""
        try:
            return str(self.repo.commit(commit).tree.hexsha)
        except (ValueError, git.BadName):
            return None

    def tracked_links(self, commit: str | None = None) -> set[str]:
        """Tracked paths that are symbolic links at `commit`."""
        out = self.repo.git.ls_tree("-r", "-z", commit or "HEAD")
        return {e.split("\t", 1)[1] for e in out.split("\0") if e.startswith("120000 ")}

    def read_file(self, commit: str, path: str) -> str | None:
        """A file's text at a commit, or None if it does not exist there (or is not UTF-8 text)."""
        try:
            blob = self.repo.commit(commit).tree / path
        except (KeyError, ValueError, git.BadName):
            return None
        try:
            data: bytes = blob.data_stream.read()
            return data.decode("utf-8")
        except (UnicodeDecodeError, AttributeError):
            return None

    def link_in_path(self, commit: str, path: str) -> str | None:
        """How `path` is or passes through a symbolic link at `commit` (e.g. "passes through the symbolic link
        configs -> /elsewhere/configs, outside the worktree"), or None when no component of it is a link."""
        try:
            tree = self.repo.commit(commit).tree
        except (ValueError, git.BadName):
            return None
        parts = path.split("/")
        for n in range(1, len(parts) + 1):
            prefix = "/".join(parts[:n])
            try:
                obj = tree / prefix
            except KeyError:
                return None  # a new file or folder below here: nothing of it exists to be a link
            if obj.mode != 0o120000:
                continue
            target = obj.data_stream.read().decode("utf-8", "replace")
            inside = not target.startswith("/") and ".." not in os.path.normpath(
                os.path.join(os.path.dirname(prefix), target)).split("/")
            where = "inside the worktree" if inside else "outside the worktree"
            what = "is" if n == len(parts) else "passes through"
            return f"{what} the symbolic link {prefix} -> {target}, {where}"
        return None

    # ------------------------------------------------------------------------------------------- experiments
    def worktree_git(self, wt: Path) -> git.Git:
        """git for an experiment's worktree, through the admin folder the repository registered for it, never
        through the worktree's own `.git` (see `worktree_git_env`); a GitError when none is registered there."""
        env = worktree_git_env(Path(self.repo.common_dir), wt)
        if env is None:
            raise GitError(f"{wt}: not a worktree of this repository")
        g = git.Git(str(wt))
        g.update_environment(**env)
        return g

    def job_git(self, wt: Path, commit: str, dest: Path) -> tuple[dict[str, str], list[str]]:
        """A git folder of the job's own commit for the code it runs, named by the worktree's `.git` (or, where that
        cannot be written, by `GIT_DIR` / `GIT_WORK_TREE` in the environment returned), and the folders the job must
        read; ({}, []) where none can be made.

        A job cannot see the repository's `.git` (it sits in the hidden home, or beside a private /tmp), so its
        worktree's `.git` points nowhere, and a script that logs its version (`git rev-parse HEAD`, `git describe`,
        setuptools_scm, GitPython's `Repo()`) failed every run with "not a git repository". This folder, made
        before the job starts in the run folder (read-only to the job), holds the commit as HEAD, the worktree's
        index, the repository's tags and no config of the user's: its objects are the repository's, reached through
        `objects/info/alternates` and laid in read-only — never its config, hooks or remotes."""
        common = Path(self.repo.common_dir)
        admin = worktree_git_env(common, wt)
        try:
            sha = self.repo.commit(commit).hexsha
            tags = str(self.repo.git.for_each_ref("refs/tags", format="%(objectname) %(refname)"))
            (dest / "objects" / "info").mkdir(parents=True, exist_ok=True)
            (dest / "refs" / "heads").mkdir(parents=True, exist_ok=True)
            (dest / "refs" / "tags").mkdir(parents=True, exist_ok=True)
            (dest / "objects" / "info" / "alternates").write_text(f"{common / 'objects'}\n")
            (dest / "HEAD").write_text(f"{sha}\n")
            (dest / "packed-refs").write_text("".join(f"{line}\n" for line in tags.splitlines() if line.strip()))
            sha256 = len(sha) == 64
            (dest / "config").write_text(
                f"[core]\n\trepositoryformatversion = {1 if sha256 else 0}\n\tfilemode = true\n\tbare = false\n"
                + ("[extensions]\n\tobjectformat = sha256\n" if sha256 else ""))
            for name in ("shallow",):  # a shallow clone's boundary: without it the history reads as damaged
                if (common / name).is_file():
                    shutil.copyfile(common / name, dest / name)
            if admin is not None and (Path(admin["GIT_DIR"]) / "index").is_file():
                shutil.copyfile(Path(admin["GIT_DIR"]) / "index", dest / "index")
            else:  # a copy that is no worktree (init's baseline): the commit's tree as the index
                git.Git().execute(["git", f"--git-dir={dest}", "read-tree", sha])
        except (OSError, ValueError, git.GitCommandError, git.BadName):
            shutil.rmtree(dest, ignore_errors=True)
            return {}, []
        readable = [str(dest), str(common / "objects")]
        env: dict[str, str] = {}
        dotgit = wt / ".git"
        try:  # the worktree's `.git` names the folder (nightlab's own git never reads it: `worktree_git_env`)
            if dotgit.is_symlink() or not dotgit.is_dir():
                dotgit.unlink(missing_ok=True)
                dotgit.write_text(f"gitdir: {dest}\n")
            else:
                raise OSError(f"{dotgit} is a folder")
        except OSError:  # else named in the job's environment (which then wins over `git -C` elsewhere)
            env = {"GIT_DIR": str(dest), "GIT_WORK_TREE": os.path.realpath(wt)}
        try:  # the repository's own alternates (a `--reference` clone) are read through too
            readable += [ln.strip() for ln in (common / "objects" / "info" / "alternates").read_text().splitlines()
                         if ln.strip() and os.path.isabs(ln.strip())]
        except OSError:
            pass
        return env, readable

    @staticmethod
    def branch_name(session_id: int, exp_id: int) -> str:
        return f"nightlab/{session_id}/{exp_id}"

    def worktree_path(self, exp_id: int) -> Path:
        return self.paths.worktree(exp_id)

    def branch_exists(self, branch: str) -> bool:
        return f"refs/heads/{branch}" in {r.path for r in self.repo.references}

    def branch_commit(self, branch: str) -> str | None:
        try:
            return self.repo.commit(f"refs/heads/{branch}").hexsha
        except (git.BadName, ValueError):
            return None

    def materialise(self, exp_id: int, session_id: int, parent_commit: str, changes: dict[str, str],
                    message: str, links: Iterable[str] = ()) -> tuple[str, str]:
        """Create (or re-create, after a crash) the experiment's worktree and branch, commit the changes.

        Idempotent: if the branch already holds a commit on top of parent_commit with this message, it is reused.
        Returns (branch, commit sha). A failure is one GitError / EditError line, and leaves no worktree or branch
        of this experiment behind.
        """
        try:
            return self._materialise(exp_id, session_id, parent_commit, changes, message, links)
        except git.GitCommandError as err:
            raise GitError(f"could not create experiment {exp_id}: {_one_line(err)}") from None

    def _materialise(self, exp_id: int, session_id: int, parent_commit: str, changes: dict[str, str],
                     message: str, links: Iterable[str]) -> tuple[str, str]:
        self.ensure_state_dir()
        branch = self.branch_name(session_id, exp_id)
        wt = self.worktree_path(exp_id)
        existing = self.branch_commit(branch)
        if existing is not None:
            c = self.repo.commit(existing)
            done = (not changes and existing == parent_commit) or (
                changes and c.parents and c.parents[0].hexsha == parent_commit and c.message.strip() == message.strip()
            )
            if done:
                self.checkout(exp_id, existing, links)
                return branch, existing
            self._remove_worktree(wt)
            self.repo.git.branch("-D", branch)
        self._remove_worktree(wt)
        self.worktrees.mkdir(parents=True, exist_ok=True)
        self.repo.git.worktree("add", "--quiet", "-b", branch, str(wt), parent_commit)
        self.link(wt, links)
        if not changes:
            return branch, parent_commit
        try:
            wgit = self.worktree_git(wt)
            for rel, text in changes.items():
                _write_inside(wt, rel, text)
            wgit.add("--", *changes.keys())
            with wgit.custom_environment(**_identity_env()):
                wgit.commit("--quiet", "--no-verify", "-m", message)
            return branch, str(wgit.rev_parse("HEAD")).strip()
        except (OSError, git.GitCommandError, EditError, GitError) as err:
            # never leave a half-made experiment behind: the next run would trip over it again
            self._remove_worktree(wt)
            if self.branch_exists(branch):
                self.repo.git.branch("-D", branch)
            if isinstance(err, EditError | GitError):
                raise
            raise GitError(f"could not commit experiment {exp_id}: {_one_line(err)}") from None

    def checkout(self, exp_id: int, commit: str, links: Iterable[str] = ()) -> Path:
        """Ensure a worktree for running the experiment exists at `commit` and return its path.

        Detached, so several runs of one commit (seed re-runs) can each have their own worktree.
        """
        wt = self.worktree_path(exp_id)
        if wt.is_dir():
            try:
                if str(self.worktree_git(wt).rev_parse("HEAD")).strip() == self.repo.commit(commit).hexsha:
                    self.link(wt, links)
                    return wt
            except (ValueError, git.GitCommandError, git.BadName, GitError):
                pass
        self._remove_worktree(wt)
        self.worktrees.mkdir(parents=True, exist_ok=True)
        try:
            self.repo.git.worktree("add", "--quiet", "--detach", str(wt), commit)
        except git.GitCommandError as err:  # its commit is gone or damaged: one clear line for the launch's failure
            self._remove_worktree(wt)
            raise GitError(f"commit {commit[:12]} cannot be checked out: {_one_line(err)}") from None
        self.link(wt, links)
        return wt

    def worktree_dirty(self, exp_id: int) -> bool:
        """Whether the user changed tracked files in the experiment's worktree (after opening them in an editor)."""
        wt = self.worktree_path(exp_id)
        try:
            return bool(str(self.worktree_git(wt).status("--porcelain=v1", "--untracked-files=no")).strip())
        except (git.GitCommandError, GitError):
            return False

    def amend(self, exp_id: int, branch: str | None = None) -> str:
        """Fold what the user changed in the experiment's worktree into its commit, so the experiment stays one
        commit on top of its parent; `branch` is moved to the new commit when the worktree is detached."""
        wgit = self.worktree_git(self.worktree_path(exp_id))
        wgit.add("-u")
        with wgit.custom_environment(**_identity_env()):
            wgit.commit("--quiet", "--no-verify", "--amend", "--no-edit")
        sha = str(wgit.rev_parse("HEAD")).strip()
        if branch and self.branch_commit(branch) != sha:
            self.repo.git.branch("-f", branch, sha)
        return sha

    def link(self, wt: Path, links: Iterable[str]) -> None:
        """Symlink the untracked paths `links` (data folders) of the project into a worktree or a copy of one."""
        for rel in links:
            src = self.root / rel
            dst = wt / rel
            if _through_link(wt, rel):  # a folder a job replaced by a link: never made or written through
                continue
            if src.exists() and not dst.exists() and not dst.is_symlink():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(src, dst)

    def prune(self, exp_id: int) -> None:
        """Remove a settled experiment's worktree; its branch stays so the diff remains queryable."""
        self._remove_worktree(self.worktree_path(exp_id))

    def _remove_worktree(self, wt: Path) -> None:
        if wt.exists():
            try:
                self.repo.git.worktree("remove", "--force", "--force", str(wt))
            except git.GitCommandError:
                shutil.rmtree(wt, ignore_errors=True)
        try:
            self.repo.git.worktree("prune")
        except git.GitCommandError:
            pass

    def delete_branch(self, branch: str) -> None:
        if self.branch_exists(branch):
            self.repo.git.branch("-D", branch)

    def branch_sessions_top(self) -> int:
        """The highest session number among the `nightlab/<session>/<id>` branches (0 when there are none)."""
        top = 0
        for br in self.nightlab_branches():
            parts = br.split("/")
            if len(parts) == 3 and parts[1].isdigit():
                top = max(top, int(parts[1]))
        return top

    def nightlab_branches(self) -> list[str]:
        return sorted(r.path[len("refs/heads/"):] for r in self.repo.references
                      if r.path.startswith("refs/heads/nightlab/"))

    def diff(self, a: str, b: str, paths: Iterable[str] = ()) -> str:
        return str(self.repo.git.diff("--no-color", "--no-ext-diff", a, b, "--", *paths,
                                      strip_newline_in_stdout=False))

    def diff_stat(self, a: str, b: str) -> DiffStat:
        out = self.repo.git.diff("--numstat", "--no-color", a, b)
        files = []
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                add = int(parts[0]) if parts[0].isdigit() else 0
                rem = int(parts[1]) if parts[1].isdigit() else 0
                files.append((parts[2], add, rem))
        return DiffStat(files)

    def changed_files(self, a: str, b: str) -> list[str]:
        out = self.repo.git.diff("--name-only", "-z", a, b)
        return [p for p in out.split("\0") if p]

    # ------------------------------------------------------------------------------------------- promote
    def promote_check(self, base: str, commit: str) -> tuple[str, list[str]]:
        """What promote would do: the diff from `base` (where the experiment chain started) and the touched files.

        Raises GitError when the touched files are not clean in the user's tree or the patch no longer applies.
        """
        if self.current_branch() is None:
            raise GitError("HEAD is detached; check out the branch to promote onto first")
        files = self.changed_files(base, commit)
        if not files:
            raise GitError("the experiment changes nothing relative to your branch")
        dirty = self.dirty_paths(files)
        if dirty:
            raise GitError(f"refusing to promote: uncommitted changes in {', '.join(sorted(dirty))}; commit or stash "
                           "them first")
        patch = self.diff(base, commit)
        if self.head_commit() != base:
            try:
                self._apply(patch, check=True)
            except git.GitCommandError:
                raise GitError("refusing to promote: your branch changed the same lines since the experiment "
                               "started; the change no longer applies cleanly") from None
        return patch, files

    def promote(self, base: str, commit: str, message: str, also: Iterable[str] = ()) -> str:
        """Apply the experiment's change onto the user's branch as one commit (only the touched files, plus `also`:
        files promote itself updated, such as a tracked nightlab.toml)."""
        patch, files = self.promote_check(base, commit)
        files = [*files, *(a for a in also if a not in files)]
        self._apply(patch)
        new_files = [f for f in files if (self.root / f).exists()]
        if new_files:
            self.repo.git.add("--", *new_files)
        removed = [f for f in files if not (self.root / f).exists()]
        if removed:
            self.repo.git.rm("--cached", "--quiet", "--ignore-unmatch", "--", *removed)
        env = {} if self._has_identity() else _identity_env()
        with self.repo.git.custom_environment(**env):
            self.repo.git.commit("--quiet", "--no-verify", "-m", message, "--", *files)
        return self.head_commit()

    def is_tracked(self, path: Path) -> bool:
        rel = Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        return rel in set(self.tracked_files())

    def commit_paths(self, rels: Iterable[str], message: str) -> str:
        """Commit the current contents of repo-relative `rels` (tracked files) onto the user's branch."""
        rels = list(rels)
        self.repo.git.add("--", *rels)
        env = {} if self._has_identity() else _identity_env()
        with self.repo.git.custom_environment(**env):
            self.repo.git.commit("--quiet", "--no-verify", "-m", message, "--", *rels)
        return self.head_commit()

    def _has_identity(self) -> bool:
        try:
            return bool(self.repo.git.config("user.email")) and bool(self.repo.git.config("user.name"))
        except git.GitCommandError:
            return False

    def _apply(self, patch: str, check: bool = False) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".patch", delete=False) as f:
            f.write(patch)
        try:
            args = ["--check"] if check else []
            self.repo.git.apply(*args, "--whitespace=nowarn", f.name)
        finally:
            os.unlink(f.name)
