//! Finding executables.

use std::path::{Path, PathBuf};

/// The program to run for `bin`: a path as given (anything with a `/`) when it is executable,
/// else the first executable of that name in a directory of `PATH`, then of `also_in`.
pub fn find_program(bin: &Path, also_in: &[&Path]) -> Option<PathBuf> {
    if bin.components().count() > 1 {
        return is_executable(bin).then(|| bin.to_owned());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(also_in.iter().map(|dir| dir.to_path_buf()))
        .map(|dir| dir.join(bin))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is an executable file.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
