//! The PKI on disk. One directory per certificate, each holding `cert.pem` and `key.pem`:
//!
//! ```text
//! <dir>/roots/<vendor>/     a vendor's root of trust for its devices
//! <dir>/server-ca/          the CA that HTTPS clients of the CSE trust
//! <dir>/server/             the CSE's HTTPS certificate, signed by server-ca
//! <dir>/devices/<name>/     device certificates
//! ```
//!
//! Keys are written with mode 0600 and directories with 0700 (on Unix). Every file is written to a
//! temporary name and renamed, so a crash never leaves half a key behind; the key is written before
//! the certificate, so a directory with `cert.pem` also has its key.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::{Identity, PkiError, Root, ServerIdentity, Validity};

pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";

/// PEM files larger than this are refused rather than read.
const MAX_PEM_FILE: u64 = 1 << 20;
const MAX_VENDOR_NAME: usize = 40;
const MAX_DEVICE_NAME: usize = 200;

/// A PKI directory (by default `./warden-data/pki`).
#[derive(Debug, Clone)]
pub struct PkiDir {
    dir: PathBuf,
}

impl PkiDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where a vendor's root lives. Vendor names are 1 to 40 of `A-Z a-z 0-9 . _ ~ -`, not starting
    /// with `.` or `-`.
    pub fn vendor_dir(&self, vendor: &str) -> Result<PathBuf, PkiError> {
        check_name("vendor name", vendor, MAX_VENDOR_NAME)?;
        Ok(self.dir.join("roots").join(vendor))
    }

    pub fn server_ca_dir(&self) -> PathBuf {
        self.dir.join("server-ca")
    }

    pub fn server_dir(&self) -> PathBuf {
        self.dir.join("server")
    }

    pub fn devices_dir(&self) -> PathBuf {
        self.dir.join("devices")
    }

    /// The vendors that have a root, sorted.
    pub fn vendors(&self) -> Result<Vec<String>, PkiError> {
        let roots = self.dir.join("roots");
        let entries = match fs::read_dir(&roots) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(PkiError::io(roots, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| PkiError::io(&roots, e))?;
            if let Some(name) = entry.file_name().to_str()
                && check_name("vendor name", name, MAX_VENDOR_NAME).is_ok()
                && entry.path().join(CERT_FILE).is_file()
            {
                out.push(name.to_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Loads a vendor's root; an unknown vendor is an error that lists the known ones.
    pub fn load_root(&self, vendor: &str) -> Result<Root, PkiError> {
        let dir = self.vendor_dir(vendor)?;
        match read_pem_pair(&dir)? {
            Some((cert, key)) => Root::from_pem(&cert, &key).map_err(|e| in_file(&dir, e)),
            None => Err(PkiError::UnknownVendor {
                vendor: vendor.to_owned(),
                dir: self.dir.clone(),
                known: self.vendors()?,
            }),
        }
    }

    /// Loads a vendor's root, or makes and writes a new one. The flag says whether it is new.
    pub fn ensure_root(&self, vendor: &str) -> Result<(Root, bool), PkiError> {
        let dir = self.vendor_dir(vendor)?;
        if let Some((cert, key)) = read_pem_pair(&dir)? {
            return Ok((Root::from_pem(&cert, &key).map_err(|e| in_file(&dir, e))?, false));
        }
        let root = Root::generate(&format!("{vendor} device root"))?;
        write_pem_pair(&dir, root.cert_pem(), &root.key_pem())?;
        Ok((root, true))
    }

    /// Loads the CSE's server identity; a missing one is an error that says how to make it.
    pub fn load_server(&self) -> Result<ServerIdentity, PkiError> {
        let (ca_dir, leaf_dir) = (self.server_ca_dir(), self.server_dir());
        match (read_pem_pair(&ca_dir)?, read_pem_pair(&leaf_dir)?) {
            (Some((ca_cert, ca_key)), Some((cert, key))) => Ok(ServerIdentity {
                ca: Root::from_pem(&ca_cert, &ca_key).map_err(|e| in_file(&ca_dir, e))?,
                leaf: Identity::from_pem(&cert, &key).map_err(|e| in_file(&leaf_dir, e))?,
            }),
            _ => Err(PkiError::BadFile {
                path: self.dir.clone(),
                reason: "no CSE server identity here (server-ca/ and server/); create it with `warden pki init`".into(),
            }),
        }
    }

    /// Loads the CSE's server identity, or makes and writes a new one for `names`. The flag says
    /// whether it is new. Half an identity (a CA without a certificate or the reverse) is an error.
    pub fn ensure_server(&self, names: &[&str]) -> Result<(ServerIdentity, bool), PkiError> {
        let (ca_dir, leaf_dir) = (self.server_ca_dir(), self.server_dir());
        match (read_pem_pair(&ca_dir)?.is_some(), read_pem_pair(&leaf_dir)?.is_some()) {
            (true, true) => return Ok((self.load_server()?, false)),
            (false, false) => {}
            (true, false) => return Err(PkiError::Incomplete(leaf_dir)),
            (false, true) => return Err(PkiError::Incomplete(ca_dir)),
        }
        let ca = Root::generate("Warden demo server CA")?;
        let leaf = ca.issue_server(names, Validity::days(365))?;
        write_pem_pair(&ca_dir, ca.cert_pem(), &ca.key_pem())?;
        write_pem_pair(&leaf_dir, leaf.cert_pem(), leaf.key_pem())?;
        Ok((ServerIdentity { ca, leaf }, true))
    }

    /// The default directory name of a device certificate: the App-ID, followed by `_<stem>` when the
    /// certificate carries an AE-ID.
    pub fn device_name(app_id: &onem2m::AppId, ae_id: Option<&onem2m::AeId>) -> String {
        default_device_name(app_id.as_str(), ae_id.map(|a| a.stem().as_str()))
    }

    /// Writes a device identity under `devices/`. With `exact`, the directory is `name` and must not
    /// exist yet; otherwise the first free one of `name`, `name-2`, `name-3`, ... is taken. Returns
    /// the directory.
    pub fn write_device(&self, name: &str, exact: bool, identity: &Identity) -> Result<PathBuf, PkiError> {
        check_name("device name", name, MAX_DEVICE_NAME)?;
        let parent = self.devices_dir();
        create_private_dir_all(&parent)?;
        let mut n = 1u32;
        let dir = loop {
            let candidate = if n == 1 { parent.join(name) } else { parent.join(format!("{name}-{n}")) };
            match create_private_dir(&candidate) {
                Ok(()) => break candidate,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !exact && n < 10_000 => n += 1,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(PkiError::Exists(candidate)),
                Err(e) => return Err(PkiError::io(candidate, e)),
            }
        };
        write_pem_pair(&dir, identity.cert_pem(), identity.key_pem())?;
        Ok(dir)
    }
}

fn default_device_name(app_id: &str, stem: Option<&str>) -> String {
    let mut name = match stem {
        Some(stem) => format!("{app_id}_{stem}"),
        None => app_id.to_owned(),
    };
    // App-IDs and stems are ASCII, so cutting at any byte is safe.
    name.truncate(MAX_DEVICE_NAME);
    name
}

fn in_file(dir: &Path, e: PkiError) -> PkiError {
    PkiError::BadFile { path: dir.to_owned(), reason: e.to_string() }
}

fn check_name(kind: &str, name: &str, max: usize) -> Result<(), PkiError> {
    let ok = (1..=max).contains(&name.len())
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'~' | b'-'))
        && !name.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(PkiError::InvalidInput(format!(
            "invalid {kind} {name:?}: use 1 to {max} of A-Z a-z 0-9 . _ ~ -, not starting with '.' or '-'"
        )))
    }
}

/// Writes `key.pem` (mode 0600) and then `cert.pem` into `dir`, creating it (mode 0700) if needed.
pub fn write_pem_pair(dir: &Path, cert_pem: &str, key_pem: &str) -> Result<(), PkiError> {
    create_private_dir_all(dir)?;
    write_atomic(&dir.join(KEY_FILE), key_pem.as_bytes(), 0o600)?;
    write_atomic(&dir.join(CERT_FILE), cert_pem.as_bytes(), 0o644)
}

/// Reads `cert.pem` and `key.pem` from `dir`: `None` when neither exists, an error when only one does.
pub fn read_pem_pair(dir: &Path) -> Result<Option<(String, String)>, PkiError> {
    let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    match (read_small(&cert)?, read_small(&key)?) {
        (Some(c), Some(k)) => Ok(Some((c, k))),
        (None, None) => Ok(None),
        _ => Err(PkiError::Incomplete(dir.to_owned())),
    }
}

fn read_small(path: &Path) -> Result<Option<String>, PkiError> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(PkiError::io(path, e)),
    };
    let mut text = String::new();
    file.take(MAX_PEM_FILE + 1).read_to_string(&mut text).map_err(|e| PkiError::io(path, e))?;
    if text.len() as u64 > MAX_PEM_FILE {
        return Err(PkiError::BadFile { path: path.to_owned(), reason: "larger than 1 MiB".into() });
    }
    Ok(Some(text))
}

fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> io::Result<()> {
        // A leftover from a crash may have other permissions; start afresh so `mode` applies.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| PkiError::io(path, e))
}

fn private_dir_builder() -> fs::DirBuilder {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
}

fn create_private_dir_all(dir: &Path) -> Result<(), PkiError> {
    private_dir_builder().recursive(true).create(dir).map_err(|e| PkiError::io(dir, e))
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    private_dir_builder().create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceSpec;
    use onem2m::{AeId, AppId};

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn roots_are_created_once_and_reloaded() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(tmp.path().join("pki"));
        assert_eq!(pki.vendors().unwrap(), Vec::<String>::new());
        let (a, created) = pki.ensure_root("acme").unwrap();
        assert!(created);
        assert_eq!(a.subject(), "CN=acme device root");
        let (again, created) = pki.ensure_root("acme").unwrap();
        assert!(!created);
        assert_eq!(again.fingerprint(), a.fingerprint());
        assert_eq!(pki.load_root("acme").unwrap().fingerprint(), a.fingerprint());
        pki.ensure_root("zeta").unwrap();
        assert_eq!(pki.vendors().unwrap(), ["acme", "zeta"]);
        #[cfg(unix)]
        {
            let dir = pki.vendor_dir("acme").unwrap();
            assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(fs::read_dir(&dir).unwrap().count(), 2, "no temporary files are left");
        }
    }

    #[test]
    fn unknown_vendor_lists_the_known_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(tmp.path());
        pki.ensure_root("demo").unwrap();
        let err = pki.load_root("other").unwrap_err();
        assert!(matches!(&err, PkiError::UnknownVendor { known, .. } if known == &["demo"]), "{err}");
        let text = err.to_string();
        assert!(text.contains("\"other\"") && text.contains("demo") && text.contains("warden pki init"), "{text}");
        for bad in ["", ".hidden", "-x", "a/b", "..", "a b", &"x".repeat(41)] {
            assert!(matches!(pki.load_root(bad), Err(PkiError::InvalidInput(_))), "{bad:?}");
            assert!(matches!(pki.ensure_root(bad), Err(PkiError::InvalidInput(_))), "{bad:?}");
        }
    }

    #[test]
    fn half_a_pair_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(tmp.path());
        pki.ensure_root("demo").unwrap();
        fs::remove_file(pki.vendor_dir("demo").unwrap().join(KEY_FILE)).unwrap();
        assert!(matches!(pki.load_root("demo"), Err(PkiError::Incomplete(_))));
        assert!(matches!(pki.ensure_root("demo"), Err(PkiError::Incomplete(_))));
    }

    #[test]
    fn corrupt_files_name_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(tmp.path());
        pki.ensure_root("demo").unwrap();
        let dir = pki.vendor_dir("demo").unwrap();
        fs::write(dir.join(CERT_FILE), "garbage").unwrap();
        let err = pki.load_root("demo").unwrap_err();
        assert!(matches!(&err, PkiError::BadFile { path, .. } if path == &dir), "{err}");
        fs::write(dir.join(CERT_FILE), vec![b'x'; (MAX_PEM_FILE + 10) as usize]).unwrap();
        assert!(matches!(pki.load_root("demo"), Err(PkiError::BadFile { .. })));
    }

    #[test]
    fn server_identity_is_created_once() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(tmp.path());
        assert!(matches!(pki.load_server(), Err(PkiError::BadFile { .. })));
        let (id, created) = pki.ensure_server(crate::DEFAULT_SERVER_NAMES).unwrap();
        assert!(created);
        let (again, created) = pki.ensure_server(&["other"]).unwrap();
        assert!(!created);
        assert_eq!(again.leaf.fingerprint(), id.leaf.fingerprint());
        assert_eq!(again.ca.fingerprint(), id.ca.fingerprint());
        #[cfg(unix)]
        {
            assert_eq!(mode(&pki.server_dir().join(KEY_FILE)), 0o600);
            assert_eq!(mode(&pki.server_ca_dir().join(KEY_FILE)), 0o600);
        }
        fs::remove_dir_all(pki.server_dir()).unwrap();
        assert!(matches!(pki.ensure_server(&["localhost"]), Err(PkiError::Incomplete(_))));
    }

    #[test]
    fn devices_get_fresh_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(tmp.path());
        let (root, _) = pki.ensure_root("demo").unwrap();
        let app = AppId::parse("Racme01.com.acme.thermostat").unwrap();
        let ae = AeId::parse("//acme.example.com/Sdev1").unwrap();
        let name = PkiDir::device_name(&app, Some(&ae));
        assert_eq!(name, "Racme01.com.acme.thermostat_Sdev1");
        assert_eq!(PkiDir::device_name(&app, None), "Racme01.com.acme.thermostat");
        let dev = root.issue_device(&DeviceSpec::new(app).ae_id(ae)).unwrap();
        let first = pki.write_device(&name, false, &dev).unwrap();
        let second = pki.write_device(&name, false, &dev).unwrap();
        assert_eq!(first, pki.devices_dir().join(&name));
        assert_eq!(second, pki.devices_dir().join(format!("{name}-2")));
        assert!(matches!(pki.write_device(&name, true, &dev), Err(PkiError::Exists(_))));
        let (cert, key) = read_pem_pair(&first).unwrap().unwrap();
        assert_eq!(Identity::from_pem(&cert, &key).unwrap().fingerprint(), dev.fingerprint());
        assert!(matches!(pki.write_device("../escape", false, &dev), Err(PkiError::InvalidInput(_))));
        let long = default_device_name(&"N".repeat(300), Some("Sx"));
        assert_eq!(long.len(), MAX_DEVICE_NAME);
    }
}
