//! What commands print. Pure: values in, strings out. One part per output kind; the paths
//! callers use (`render::plan_text`, `render::json`, ...) are re-exported here.

pub mod style;
pub mod json;
pub mod plan;
pub mod comment;
pub mod fanout;
pub mod graph;
pub mod list;
pub mod build;
pub mod versions;
pub mod explain;
pub mod cache;
pub mod remote;
pub mod packages;
pub mod sbom;

pub use build::{build_summary, image_tests_text};
pub use cache::{cache_gc_text, cache_ls_text, cache_verify_failed, cache_verify_text};
pub use comment::plan_markdown;
pub use explain::{explain, Explanation, Verdict};
pub use fanout::{plan_gitlab, plan_matrix};
pub use graph::{graph_dot, graph_json, graph_mermaid};
pub use json::json;
pub use list::{hash_text, list_text, LatestArtifact, ListRow};
pub use packages::{packages_diff_text, packages_text};
pub use plan::plan_text;
pub use remote::{remote_entries_text, transfer_text, Moved, Transfer, TransferOutcome};
pub use sbom::{cyclonedx_json, spdx_json, SbomInput};
pub use style::Style;
pub use versions::{versions_text, VersionRow};
