//! Debian packages made by tests: a `.deb` built with `dpkg-deb` ([`build_deb`]), and a small
//! apt repository of `layer-hello` versions (a flat archive indexed by `apt-ftparchive`) that
//! plays the security update on `debian` origins ([`AptRepo`]).

use std::path::Path;
use std::process::Command;

use crate::common::run_ok;

/// A package a test builds: it holds `usr/share/NAME/version`, its version and a newline.
pub(crate) struct Deb<'a> {
    pub name: &'a str,
    pub version: &'a str,
    /// The source package, when it is not `name`.
    pub source: Option<&'a str>,
}

/// Builds `deb` as the file `out` (its tree made in `work` and removed after).
pub(crate) fn build_deb(work: &Path, deb: &Deb, out: &Path) {
    let Deb {
        name,
        version,
        source,
    } = deb;
    let tree = work.join(format!("build-{name}-{version}"));
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(tree.join(format!("usr/share/{name}"))).unwrap();
    let source = source.map(|s| format!("Source: {s}\n")).unwrap_or_default();
    std::fs::write(
        tree.join("DEBIAN/control"),
        format!(
            "Package: {name}\n{source}Version: {version}\nArchitecture: all\nMaintainer: layer tests <t@example.com>\nDescription: a package of layer's tests\n"
        ),
    )
    .unwrap();
    std::fs::write(
        tree.join(format!("usr/share/{name}/version")),
        format!("{version}\n"),
    )
    .unwrap();
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    run_ok(
        Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group"])
            .arg(&tree)
            .arg(out),
    );
    std::fs::remove_dir_all(&tree).unwrap();
}

/// A flat apt repository in a temporary folder, of `layer-hello` versions.
pub(crate) struct AptRepo {
    dir: tempfile::TempDir,
}

impl AptRepo {
    /// A repository serving `layer-hello` at `version`.
    pub(crate) fn with(version: &str) -> AptRepo {
        let repo = AptRepo {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.publish(version);
        repo
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `layer-hello` at `version` added, and the repository indexed again.
    pub(crate) fn publish(&self, version: &str) {
        let deb = Deb {
            name: "layer-hello",
            version,
            source: None,
        };
        build_deb(self.path(), &deb, &self.deb(version));
        self.index();
    }

    /// `layer-hello` at `version` taken away, and the repository indexed again.
    pub(crate) fn withdraw(&self, version: &str) {
        std::fs::remove_file(self.deb(version)).unwrap();
        self.index();
    }

    fn deb(&self, version: &str) -> std::path::PathBuf {
        self.path().join(format!("layer-hello_{version}_all.deb"))
    }

    /// `Packages` and `Release` made again.
    fn index(&self) {
        let repo = self.path();
        let packages = run_ok(
            Command::new("apt-ftparchive")
                .arg("packages")
                .arg(".")
                .current_dir(repo),
        );
        std::fs::write(repo.join("Packages"), packages).unwrap();
        let _ = std::fs::remove_file(repo.join("Release"));
        // A second apart, so the new Release's `Date:` differs as well as its bytes.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let release = run_ok(
            Command::new("apt-ftparchive")
                .arg("release")
                .arg(".")
                .current_dir(repo),
        );
        std::fs::write(repo.join("Release"), release).unwrap();
    }

    /// The repository as a `sources` line.
    pub(crate) fn source(&self) -> String {
        format!("deb [trusted=yes] file://{} ./", self.path().display())
    }
}

/// The declaration of an image on the `bookworm` origin installing `layer-hello` from the
/// `sources` line `source`, with `more` after it.
pub(crate) fn hello_image(source: &str, more: &str) -> String {
    format!("origin = \"bookworm\"\npackages = [\"layer-hello\"]\nsources = [\"{source}\"]\n{more}")
}
