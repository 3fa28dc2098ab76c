//! Process limits a server sets for itself.

/// Raises the soft limit on open files to the hard limit and returns the limit now in force
/// (`None`: unlimited). Every connection, database connection and file is a descriptor; the
/// soft limit many systems start a service with (1024) is reached by a few hundred slow clients,
/// after which no listener of the process can accept anyone, the health probes included.
pub fn raise_open_files() -> std::io::Result<Option<u64>> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum })?;
    }
    Ok(getrlimit(Resource::Nofile).current)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_becomes_the_hard_limit() {
        use rustix::process::{Resource, getrlimit};
        let raised = super::raise_open_files().expect("raising to the hard limit is always allowed");
        assert_eq!(raised, getrlimit(Resource::Nofile).maximum);
    }
}
