//! What a failed write of the index says: a full disk (or a spent quota) as such,
//! naming the index directory, another I/O error naming it too, anything else in
//! tantivy's words.

use std::path::Path;

use super::EngineError;

impl EngineError {
    /// A tantivy error met writing the index in `dir`: a full disk says so and names
    /// the directory; another I/O error names it too; anything else is tantivy's.
    pub fn writing(dir: &Path, e: tantivy::TantivyError) -> EngineError {
        // An indexing thread's error may come as text only.
        let full = io_cause(&e).map_or_else(|| said_no_room(&e.to_string()), no_room);
        if let Some(what) = full {
            return EngineError::Full {
                dir: dir.to_path_buf(),
                what,
            };
        }
        match io_cause(&e) {
            Some(io) => EngineError::Io {
                context: format!("cannot write the index in {}", dir.display()),
                cause: std::io::Error::new(io.kind(), io.to_string()),
            },
            None => EngineError::Tantivy(e),
        }
    }
}

/// Whether `io` says the disk is full or the quota spent, and which. tantivy wraps
/// some of these in errors of its own (`Custom { kind: Other, .. }`): the wrapped
/// errors are looked through, and where one does not say what it wraps (the term
/// dictionary's, which implements only the deprecated `cause()`), its message is read.
fn no_room(io: &std::io::Error) -> Option<&'static str> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(io);
    while let Some(e) = next {
        match e.downcast_ref::<std::io::Error>() {
            Some(io) if io.kind() == std::io::ErrorKind::StorageFull => return Some(NO_ROOM[0].1),
            Some(io) if io.kind() == std::io::ErrorKind::QuotaExceeded => {
                return Some(NO_ROOM[1].1);
            }
            // A wrapping io::Error's `source()` skips what it wraps.
            Some(io) => next = io.get_ref().map(|inner| inner as _),
            None => next = e.source(),
        }
    }
    said_no_room(&io.to_string())
}

/// The errors of a full disk and a spent quota, as [`no_room`] names them.
const NO_ROOM: [(i32, &str); 2] = [
    (libc::ENOSPC, "no space left on device"),
    (libc::EDQUOT, "disk quota exceeded"),
];

/// Whether an error's message holds the system's message for a full disk or a spent
/// quota (as an io::Error shows it), and which.
fn said_no_room(text: &str) -> Option<&'static str> {
    NO_ROOM
        .into_iter()
        .find(|(code, _)| text.contains(&std::io::Error::from_raw_os_error(*code).to_string()))
        .map(|(_, what)| what)
}

/// The I/O error inside a tantivy error, if it is one.
fn io_cause(e: &tantivy::TantivyError) -> Option<&std::io::Error> {
    use tantivy::TantivyError as T;
    use tantivy::directory::error::{LockError, OpenDirectoryError, OpenReadError, OpenWriteError};
    match e {
        T::IoError(io)
        | T::OpenWriteError(OpenWriteError::IoError { io_error: io, .. })
        | T::OpenReadError(OpenReadError::IoError { io_error: io, .. })
        | T::OpenDirectoryError(OpenDirectoryError::IoError { io_error: io, .. })
        | T::LockFailure(LockError::IoError(io), _) => Some(io),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};
    use std::sync::Arc;

    /// Like the term dictionary's error: it wraps an io::Error but does not say so
    /// through `source()`.
    #[derive(Debug)]
    struct Opaque(Error);

    impl std::fmt::Display for Opaque {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}", self.0)
        }
    }

    impl std::error::Error for Opaque {}

    #[test]
    fn a_full_disk_is_told_however_tantivy_wraps_it() {
        let dir = Path::new("/data/index-v1");
        let full = || Error::from_raw_os_error(libc::ENOSPC);
        let wrapped = [
            tantivy::TantivyError::IoError(Arc::new(full())),
            tantivy::TantivyError::IoError(Arc::new(Error::other(Opaque(full())))),
            tantivy::TantivyError::IoError(Arc::new(Error::new(ErrorKind::StorageFull, "x"))),
            tantivy::TantivyError::ErrorInThread(format!("worker failed: {}", full())),
        ];
        for e in wrapped {
            let said = EngineError::writing(dir, e).to_string();
            assert!(
                said.starts_with(
                    "cannot write the index in /data/index-v1: no space left on device;"
                ),
                "{said}"
            );
        }
        let quota =
            tantivy::TantivyError::IoError(Arc::new(Error::from_raw_os_error(libc::EDQUOT)));
        assert!(
            EngineError::writing(dir, quota)
                .to_string()
                .contains("disk quota exceeded")
        );

        let denied = Error::from_raw_os_error(libc::EACCES);
        let e = tantivy::TantivyError::IoError(Arc::new(denied));
        let said = EngineError::writing(dir, e).to_string();
        assert!(
            said.starts_with("cannot write the index in /data/index-v1: Permission denied"),
            "{said}"
        );
        let other = tantivy::TantivyError::InvalidArgument("x".into());
        assert!(matches!(
            EngineError::writing(dir, other),
            EngineError::Tantivy(_)
        ));
    }
}
