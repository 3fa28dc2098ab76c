//! Loading the adapter's keys from files, and generating development keys.
//!
//! Keys never come from the repository. In development (`keys.generate_missing_in` set) a
//! missing key file is generated on first start into that directory, which is then marked with
//! a `DEVELOPMENT-KEYS` file; production refuses the setting and any key file that sits in a
//! marked directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, bail};
use zeroize::Zeroizing;

use tmp_protocol::jwe::KeyRing;
use tmp_protocol::jwk::RsaKeyPair;
use tmp_protocol::webhook::WebhookSecret;

use crate::config::{Environment, Settings};
use crate::crypto::at_rest::{DataKeyRing, Fingerprinter};
use crate::crypto::cvc2::CvkPair;

/// Name of the marker file in a directory of generated development keys.
pub const DEVELOPMENT_MARKER: &str = "DEVELOPMENT-KEYS";

/// RSA modulus size of generated JWE keys.
pub const RSA_BITS: usize = 2048;

/// Every key the adapter runs with.
pub struct KeyMaterial {
    pub jwe: KeyRing,
    /// Replaced in place by a reload (`startup::Reloader`): every holder of this `KeyMaterial`
    /// — the routes, the relay — seals and opens with the ring in force.
    pub data_keys: DataKeys,
    pub fingerprinter: Arc<Fingerprinter>,
    /// Only for the local registry card source.
    pub cvk: Option<Arc<CvkPair>>,
    pub hmac_secrets: Vec<WebhookSecret>,
    /// True when any key came from a development key directory.
    pub uses_development_keys: bool,
}

impl KeyMaterial {
    /// Loads (and in development, first generates) every configured key.
    pub fn load(settings: &Settings) -> anyhow::Result<KeyMaterial> {
        if let Some(dir) = &settings.keys.generate_missing_in {
            generate_missing(settings, dir)?;
        }
        let mut development = false;
        let mut note = |path: &Path| -> anyhow::Result<()> {
            if is_development_key(path) {
                if settings.environment == Environment::Production {
                    bail!("production refuses the development key {}", path.display());
                }
                development = true;
            }
            Ok(())
        };

        let mut jwe_keys = Vec::new();
        for key in &settings.keys.jwe {
            note(&key.private_key_file)?;
            let pem = read_secret(&key.private_key_file)?;
            let pair = RsaKeyPair::from_pkcs8_pem(&key.kid, &pem)
                .with_context(|| format!("{} is not a PKCS#8 PEM RSA key", key.private_key_file.display()))?;
            jwe_keys.push(pair);
        }

        let mut data_keys = Vec::new();
        for (id, path) in &settings.keys.data_keys.files {
            note(path)?;
            data_keys.push((id.clone(), read_key_hex::<32>(path)?));
        }
        let data_keys =
            DataKeyRing::new(settings.keys.data_keys.active.clone(), data_keys).context("keys.data_keys")?;

        note(&settings.keys.fingerprint_key_file)?;
        let fingerprinter = Arc::new(Fingerprinter::new(read_key_hex::<32>(&settings.keys.fingerprint_key_file)?));

        let cvk = match settings.card_source.kind {
            crate::config::CardSourceKind::LocalRegistry => {
                let path = &settings.card_source.local_registry.cvk_file;
                note(path)?;
                let hex = read_secret(path)?;
                let hex = hex.trim();
                if hex.len() != 32 {
                    bail!("{} must hold 32 hex characters (CVK-A then CVK-B)", path.display());
                }
                Some(Arc::new(
                    CvkPair::from_hex(&hex[..16], &hex[16..]).with_context(|| format!("{}", path.display()))?,
                ))
            }
            crate::config::CardSourceKind::ProcessorBridge => None,
        };

        let hmac_secrets = settings.auth.hmac_secrets.clone();

        Ok(KeyMaterial {
            jwe: KeyRing::new(jwe_keys).context("keys.jwe")?,
            data_keys: DataKeys::new(data_keys),
            fingerprinter,
            cvk,
            hmac_secrets,
            uses_development_keys: development,
        })
    }
}

/// The data key ring in force, replaceable while the adapter runs.
pub struct DataKeys(RwLock<Arc<DataKeyRing>>);

impl DataKeys {
    pub fn new(ring: DataKeyRing) -> DataKeys {
        DataKeys(RwLock::new(Arc::new(ring)))
    }

    /// The ring in force now. A value sealed with it opens after a reload as long as the reload
    /// kept its key, which a reload checks (`Reloader`: no key still in use may go).
    pub fn current(&self) -> Arc<DataKeyRing> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, ring: Arc<DataKeyRing>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = ring;
    }
}

fn is_development_key(path: &Path) -> bool {
    path.parent().is_some_and(|dir| dir.join(DEVELOPMENT_MARKER).exists())
}

fn read_secret(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    fs::read_to_string(path).map(Zeroizing::new).with_context(|| format!("cannot read key file {}", path.display()))
}

fn read_key_hex<const N: usize>(path: &Path) -> anyhow::Result<Zeroizing<[u8; N]>> {
    let text = read_secret(path)?;
    let mut key = Zeroizing::new([0u8; N]);
    hex::decode_to_slice(text.trim(), key.as_mut_slice())
        .map_err(|_| anyhow::anyhow!("{} must hold exactly {} hex characters", path.display(), N * 2))?;
    Ok(key)
}

/// Generates every missing key file of the configuration into `dir` (development only).
fn generate_missing(settings: &Settings, dir: &Path) -> anyhow::Result<()> {
    let mut generated: Vec<PathBuf> = Vec::new();
    let mut ensure = |path: &Path, make: &dyn Fn() -> anyhow::Result<Zeroizing<String>>| -> anyhow::Result<()> {
        if path.exists() {
            return Ok(());
        }
        if !path.starts_with(dir) {
            bail!(
                "key file {} is missing and lies outside keys.generate_missing_in ({}); refusing to generate it",
                path.display(),
                dir.display()
            );
        }
        write_private(path, make()?.as_bytes())?;
        generated.push(path.to_path_buf());
        Ok(())
    };
    for key in &settings.keys.jwe {
        ensure(&key.private_key_file, &|| Ok(RsaKeyPair::generate(RSA_BITS)?.to_pkcs8_pem()?))?;
    }
    for path in settings.keys.data_keys.files.values() {
        ensure(path, &|| Ok(random_hex(32)))?;
    }
    ensure(&settings.keys.fingerprint_key_file, &|| Ok(random_hex(32)))?;
    if settings.card_source.kind == crate::config::CardSourceKind::LocalRegistry {
        ensure(&settings.card_source.local_registry.cvk_file, &|| Ok(random_hex(16)))?;
    }
    if !generated.is_empty() {
        fs::write(
            dir.join(DEVELOPMENT_MARKER),
            "Keys in this directory were generated by tmp-adapter for development.\n\
             Production refuses them. Never use them for real card data.\n",
        )?;
        for path in &generated {
            tracing::warn!(
                key_file = %path.display(),
                "GENERATED A DEVELOPMENT KEY: for local development only, never for real card data"
            );
        }
    }
    Ok(())
}

/// Random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> Zeroizing<String> {
    let mut buf = Zeroizing::new(vec![0u8; bytes]);
    rand::fill(buf.as_mut_slice());
    Zeroizing::new(hex::encode(buf.as_slice()))
}

/// Writes a key file readable by its owner only, creating its directory.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create key file {}", path.display()))?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    #[cfg(not(unix))]
    fs::write(path, contents).with_context(|| format!("cannot create key file {}", path.display()))?;
    Ok(())
}
