//! `layer sbom`: a build's package manifest as an SPDX 2.3 or `CycloneDX` 1.5 JSON document,
//! with package URLs, the image's key and version, and the chain of builds it was made on.
//!
//! The document models are small serde structs written here: `spdx-rs` has not followed SPDX
//! since 2.2 and is unkept, and `cyclonedx-bom` (31k lines, its own XML, URI, purl and SPDX
//! expression stack) models far more than the few fields an image's SBOM fills. The tests
//! check the output with each format's own validator (`pyspdxtools`, `cyclonedx-python-lib`).
//!
//! Documents are reproducible: the creation time is the build's, identifiers derive from the
//! image, version and key, and packages come sorted.

use serde::Serialize;

use crate::packages::{Manifest, Package};
use crate::record::Record;

/// What an SBOM describes: a build, its manifest, and the builds below it (nearest first).
pub struct SbomInput<'a> {
    pub record: &'a Record,
    pub manifest: &'a Manifest,
    pub chain: &'a [Record],
    /// `layer`'s version, for the creator.
    pub tool_version: &'a str,
}

/// An SPDX identifier made of what SPDX allows (letters, digits, `.` and `-`).
fn spdx_id(prefix: &str, parts: &[&str]) -> String {
    let mut s = String::from(prefix);
    for p in parts {
        s.push('-');
        s.extend(p.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        }));
    }
    s
}

/// A UUID (version 5 layout, RFC 4122 variant) from blake3 of `text`.
fn uuid_of(text: &str) -> String {
    let h = blake3::hash(text.as_bytes());
    let mut b: [u8; 16] = h.as_bytes()[..16].try_into().expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The image's key and version, and its layer's blake3 (in a comment, not SPDX `checksums`:
/// `pyspdxtools` wants 256 hex digits for BLAKE3, misreading the spec's "at least 256 bits").
fn image_comment(r: &Record) -> String {
    let mut s = format!("layer image {} {}, key {}", r.name, r.version, r.key);
    if let Some(d) = &r.artifact.blake3 {
        s.push_str(&format!(", layer blake3 {d}"));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// SPDX 2.3

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpdxDocument {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    name: String,
    document_namespace: String,
    creation_info: SpdxCreationInfo,
    comment: String,
    packages: Vec<SpdxPackage>,
    relationships: Vec<SpdxRelationship>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpdxCreationInfo {
    created: String,
    creators: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpdxPackage {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: String,
    version_info: String,
    download_location: &'static str,
    files_analyzed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_package_purpose: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_refs: Vec<SpdxExternalRef>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpdxExternalRef {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpdxRelationship {
    spdx_element_id: String,
    relationship_type: &'static str,
    related_spdx_element: String,
}

fn spdx_image(r: &Record) -> SpdxPackage {
    SpdxPackage {
        spdx_id: spdx_id("SPDXRef-Image", &[&r.name, &r.version]),
        name: r.name.clone(),
        version_info: r.version.clone(),
        download_location: "NOASSERTION",
        files_analyzed: false,
        source_info: None,
        primary_package_purpose: Some("CONTAINER"),
        comment: Some(image_comment(r)),
        external_refs: Vec::new(),
    }
}

fn spdx_package(m: &Manifest, p: &Package) -> SpdxPackage {
    SpdxPackage {
        spdx_id: spdx_id(
            "SPDXRef-Package",
            &[m.manager.purl_type(), &p.name, &p.arch],
        ),
        name: p.name.clone(),
        version_info: p.version.clone(),
        download_location: "NOASSERTION",
        files_analyzed: false,
        source_info: Some(format!(
            "built from the source package {} {}",
            p.source,
            p.source_version()
        )),
        primary_package_purpose: None,
        comment: None,
        external_refs: vec![SpdxExternalRef {
            reference_category: "PACKAGE-MANAGER",
            reference_type: "purl",
            reference_locator: m.purl(p),
        }],
    }
}

/// The SPDX 2.3 JSON document of a build.
pub fn spdx_json(input: &SbomInput) -> String {
    let r = input.record;
    let image = spdx_image(r);
    let image_id = image.spdx_id.clone();
    let mut packages = vec![image];
    let mut relationships = vec![SpdxRelationship {
        spdx_element_id: "SPDXRef-DOCUMENT".into(),
        relationship_type: "DESCRIBES",
        related_spdx_element: image_id.clone(),
    }];
    let mut below = image_id.clone();
    for parent in input.chain {
        let p = spdx_image(parent);
        relationships.push(SpdxRelationship {
            spdx_element_id: below.clone(),
            relationship_type: "DESCENDANT_OF",
            related_spdx_element: p.spdx_id.clone(),
        });
        below = p.spdx_id.clone();
        packages.push(p);
    }
    for p in &input.manifest.packages {
        let sp = spdx_package(input.manifest, p);
        relationships.push(SpdxRelationship {
            spdx_element_id: image_id.clone(),
            relationship_type: "CONTAINS",
            related_spdx_element: sp.spdx_id.clone(),
        });
        packages.push(sp);
    }
    let doc = SpdxDocument {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        name: format!("{} {}", r.name, r.version),
        document_namespace: format!(
            "https://layer.invalid/spdx/{}/{}/{}",
            r.name, r.version, r.key
        ),
        creation_info: SpdxCreationInfo {
            created: r.built_at.clone(),
            creators: vec![format!("Tool: layer-{}", input.tool_version)],
        },
        comment: image_comment(r),
        packages,
        relationships,
    };
    super::json(&doc)
}

// ---------------------------------------------------------------------------------------------
// CycloneDX 1.5

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CdxBom {
    bom_format: &'static str,
    spec_version: &'static str,
    serial_number: String,
    version: u32,
    metadata: CdxMetadata,
    components: Vec<CdxComponent>,
    dependencies: Vec<CdxDependency>,
}

#[derive(Serialize)]
struct CdxMetadata {
    timestamp: String,
    tools: CdxTools,
    component: CdxComponent,
}

#[derive(Serialize)]
struct CdxTools {
    components: Vec<CdxComponent>,
}

#[derive(Serialize, Default)]
struct CdxComponent {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    bom_ref: Option<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hashes: Vec<CdxHash>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<CdxProperty>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pedigree: Option<CdxPedigree>,
}

#[derive(Serialize)]
struct CdxHash {
    alg: &'static str,
    content: String,
}

#[derive(Serialize)]
struct CdxProperty {
    name: &'static str,
    value: String,
}

#[derive(Serialize)]
struct CdxPedigree {
    ancestors: Vec<CdxComponent>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CdxDependency {
    #[serde(rename = "ref")]
    reference: String,
    depends_on: Vec<String>,
}

fn cdx_image(r: &Record) -> CdxComponent {
    let mut properties = vec![
        CdxProperty {
            name: "layer:key",
            value: r.key.clone(),
        },
        CdxProperty {
            name: "layer:built_at",
            value: r.built_at.clone(),
        },
    ];
    if let Some(p) = &r.parent {
        properties.push(CdxProperty {
            name: "layer:parent",
            value: format!("{} {}", p.name, p.version),
        });
    }
    CdxComponent {
        kind: "container",
        bom_ref: Some(format!("layer:{}@{}", r.name, r.version)),
        name: r.name.clone(),
        version: Some(r.version.clone()),
        hashes: r
            .artifact
            .blake3
            .iter()
            .map(|d| CdxHash {
                alg: "BLAKE3",
                content: d.clone(),
            })
            .collect(),
        properties,
        ..Default::default()
    }
}

/// The `CycloneDX` 1.5 JSON document of a build.
pub fn cyclonedx_json(input: &SbomInput) -> String {
    let (r, m) = (input.record, input.manifest);
    let mut image = cdx_image(r);
    if !input.chain.is_empty() {
        image.pedigree = Some(CdxPedigree {
            ancestors: input.chain.iter().map(cdx_image).collect(),
        });
    }
    let image_ref = image.bom_ref.clone().expect("images have a bom-ref");
    let mut components = Vec::new();
    if let Some(d) = &m.distro {
        components.push(CdxComponent {
            kind: "operating-system",
            bom_ref: Some(format!("os:{}", d.qualifier())),
            name: d.id.clone(),
            version: d.version.clone(),
            ..Default::default()
        });
    }
    components.extend(m.packages.iter().map(|p| {
        let purl = m.purl(p);
        CdxComponent {
            kind: "library",
            bom_ref: Some(purl.clone()),
            name: p.name.clone(),
            version: Some(p.version.clone()),
            purl: Some(purl),
            properties: vec![
                CdxProperty {
                    name: "layer:source",
                    value: p.source.clone(),
                },
                CdxProperty {
                    name: "layer:source_version",
                    value: p.source_version().to_string(),
                },
            ],
            ..Default::default()
        }
    }));
    let dependencies = vec![CdxDependency {
        reference: image_ref,
        depends_on: components
            .iter()
            .filter_map(|c| c.bom_ref.clone())
            .collect(),
    }];
    let bom = CdxBom {
        bom_format: "CycloneDX",
        spec_version: "1.5",
        serial_number: format!(
            "urn:uuid:{}",
            uuid_of(&format!("{} {} {}", r.name, r.version, r.key))
        ),
        version: 1,
        metadata: CdxMetadata {
            timestamp: r.built_at.clone(),
            tools: CdxTools {
                components: vec![CdxComponent {
                    kind: "application",
                    name: "layer".into(),
                    version: Some(input.tool_version.to_string()),
                    ..Default::default()
                }],
            },
            component: image,
        },
        components,
        dependencies,
    };
    super::json(&bom)
}
