//! The container artefacts in `adapter/packaging` agree with the configuration they run: the
//! compose file's settings load into valid adapter and mock settings that point the two at each
//! other, its ports are the ones `config/` listens on, and the Dockerfile copies files that exist,
//! runs unprivileged, and checks health where the adapter answers it. (No Docker engine runs in
//! CI; the image's build is not exercised here. The package and the systemd unit are checked by
//! the adapter's own tests.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A service's `environment` map, as strings.
fn environment(service: &Yaml) -> HashMap<String, String> {
    let map = service["environment"].as_hash().expect("an environment map");
    map.iter()
        .map(|(k, v)| {
            let value = match v {
                Yaml::Boolean(b) => b.to_string(),
                Yaml::Integer(i) => i.to_string(),
                other => other.as_str().expect("a string value").to_owned(),
            };
            (k.as_str().expect("a name").to_owned(), value)
        })
        .collect()
}

/// The container port of a service's one `host:port:container` mapping.
fn container_port(service: &Yaml) -> u16 {
    let ports = service["ports"].as_vec().expect("ports");
    assert_eq!(ports.len(), 1, "one published port");
    let mapping = ports[0].as_str().expect("a mapping");
    assert!(mapping.starts_with("127.0.0.1:"), "published on loopback only: {mapping}");
    mapping.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port")
}

/// The port of an `http://host:port` URL, and its host.
fn host_port(url: &str) -> (String, u16) {
    let rest = url.strip_prefix("http://").expect("http");
    let (host, port) = rest.split_once(':').expect("host:port");
    (host.to_owned(), port.trim_end_matches('/').parse().expect("a port"))
}

#[test]
fn the_compose_file_and_the_dockerfile_agree_with_the_configuration() {
    let compose = YamlLoader::load_from_str(&read("adapter/packaging/compose.yaml")).expect("YAML").remove(0);
    let services = &compose["services"];
    let (adapter, mock) = (&services["adapter"], &services["mock-tmp"]);
    assert!(services["postgres"].as_hash().is_some(), "a PostgreSQL service");

    // The adapter's environment makes valid settings on top of config/, in its environment.
    let mut env = environment(adapter);
    let layer = env.remove("TMP_ADAPTER_ENV").expect("TMP_ADAPTER_ENV");
    let settings = tmp_adapter::config::Settings::load_with(
        &repo().join("config"),
        &layer,
        config::Environment::with_prefix("TMP_ADAPTER").source(Some(env.clone())),
    )
    .unwrap_or_else(|e| panic!("the compose file's adapter settings: {e}"));
    assert_eq!(container_port(adapter), settings.server.port, "the adapter publishes its listener");
    assert_eq!(settings.server.host, "0.0.0.0", "reachable from the other containers");
    assert!(settings.database.url.starts_with("postgres://"), "on PostgreSQL");
    assert!(settings.database.url.contains("@postgres:5432/"), "the compose PostgreSQL: {}", settings.database.url);

    // The mock's environment makes valid mock settings, and each points at the other.
    let mut mock_env = environment(mock);
    let mock_config_path = mock_env.remove("MOCK_TMP_CONFIG").expect("MOCK_TMP_CONFIG");
    let mock_config = mock_tmp::MockConfig::load_with(
        &repo().join("config/mock-tmp.yaml"),
        config::Environment::with_prefix("MOCK_TMP").source(Some(mock_env)),
    )
    .unwrap_or_else(|e| panic!("the compose file's mock settings: {e}"));
    assert_eq!(container_port(mock), mock_config.server.port, "the mock publishes its listener");
    assert_eq!(host_port(&mock_config.issuer.base_url), ("adapter".to_owned(), settings.server.port));
    for url in [&settings.forwarding.tmp_api.base_url, &settings.forwarding.lifecycle_api.base_url] {
        assert_eq!(host_port(url), ("mock-tmp".to_owned(), mock_config.server.port), "{url}");
    }
    for service in [adapter, mock] {
        assert_eq!(service["read_only"].as_bool(), Some(true), "a read-only root file system");
    }
    let state = adapter["volumes"].as_vec().expect("volumes")[0].as_str().expect("a volume").to_owned();
    assert_eq!(state.split_once(':').map(|(_, target)| target), Some("/var/lib/tmp-adapter"));
    let context = repo().join("adapter/packaging").join(adapter["build"]["context"].as_str().expect("context"));
    let dockerfile_path = adapter["build"]["dockerfile"].as_str().expect("dockerfile");
    assert!(context.join(dockerfile_path).is_file(), "the build context is the repository root");

    // The Dockerfile: a build stage and a runtime stage; unprivileged; files that exist; health
    // where the adapter answers it; the configuration where the image says it is.
    let dockerfile = read(dockerfile_path);
    let instructions: Vec<&str> =
        dockerfile.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let from: Vec<&&str> = instructions.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from.len(), 2, "two stages: {from:?}");
    assert!(from[0].ends_with(" AS build"), "{from:?}");
    let runtime = dockerfile.split("\nFROM ").nth(2).expect("the runtime stage");
    let user = runtime.lines().find_map(|l| l.strip_prefix("USER ")).expect("a USER");
    let uid: u32 = user.split(':').next().and_then(|u| u.parse().ok()).expect("a numeric user");
    assert!(uid >= 1000, "not root, not a system account of the base image: {user}");
    for line in runtime.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from=")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        for source in &words[1..words.len() - 1] {
            assert!(repo().join(source).is_file(), "COPY {source}: no such file in the repository");
        }
    }
    let health = runtime.split("HEALTHCHECK").nth(1).expect("a HEALTHCHECK");
    // Over HTTPS when the listener has TLS (the image's production settings), else HTTP (compose).
    for scheme in ["https", "http"] {
        let url = format!("{scheme}://127.0.0.1:{}/readyz", settings.server.port);
        assert!(health.contains(&url), "{url} in {health}");
    }
    let ignore = read("adapter/packaging/Dockerfile.dockerignore");
    for kept_out in ["target/", "data/", ".git/"] {
        assert!(ignore.lines().any(|l| l == kept_out), "{kept_out} stays out of the build context");
    }
    let exposed = runtime.lines().find_map(|l| l.strip_prefix("EXPOSE ")).expect("EXPOSE");
    for port in [settings.server.port, settings.ops.port] {
        assert!(exposed.split_whitespace().any(|p| p == port.to_string()), "EXPOSE {port}: {exposed}");
    }
    assert!(runtime.contains("TMP_ADAPTER_CONFIG_DIR=/etc/tmp-adapter"), "the configuration directory");
    assert!(runtime.contains("/etc/tmp-adapter/\n"), "config/ is copied there");
    assert!(runtime.contains(&format!("MOCK_TMP_CONFIG={mock_config_path}")), "the mock's configuration");
    assert!(runtime.contains("WORKDIR /var/lib/tmp-adapter"), "state where the volume is");
}
