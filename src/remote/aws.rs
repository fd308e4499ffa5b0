//! Where an `s3://` remote's credentials come from, and what layer says when there are none.
//!
//! `object_store` reads the AWS CLI's environment (`AWS_ACCESS_KEY_ID` and
//! `AWS_SECRET_ACCESS_KEY`, web identity, container credentials) and, when none is there,
//! asks the EC2 instance metadata endpoint (`169.254.169.254`, or `AWS_METADATA_ENDPOINT`), as
//! the AWS CLI does: on an EC2 runner with an instance role that is what users want. Off EC2
//! it is a request that goes nowhere, so layer keeps it short (a 1 s connect timeout, two
//! retries) and, when it fails, says that credentials are missing and how to give them,
//! instead of a bare connection error. `AWS_EC2_METADATA_DISABLED=true` (the AWS CLI's switch)
//! keeps layer from asking at all. `AWS_SKIP_SIGNATURE=true` reads a public bucket without
//! credentials (anonymous, unsigned requests). Layer does not read `AWS_PROFILE` or the
//! `~/.aws` files.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use object_store::aws::AwsCredential;
use object_store::CredentialProvider;

/// The default instance metadata endpoint (`object_store`'s).
const METADATA_ENDPOINT: &str = "http://169.254.169.254";

/// What the hint of a credentials failure says.
pub(super) const HINT: &str = "set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (layer reads no `AWS_PROFILE` or `~/.aws` files), or `AWS_SKIP_SIGNATURE=true` to read a public bucket anonymously";

/// Where the credentials of an `s3://` remote come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source {
    /// Keys, a web identity or container credentials in the environment.
    Environment,
    /// `AWS_SKIP_SIGNATURE=true`: unsigned requests, for public buckets.
    Anonymous,
    /// None in the environment: the instance metadata endpoint, unless disabled.
    InstanceMetadata { endpoint: String, disabled: bool },
}

impl Source {
    /// Where the credentials come from, given the environment's variable `var`.
    pub(super) fn find(var: impl Fn(&str) -> Option<String>) -> Source {
        let set = |k: &str| var(k).is_some_and(|v| !v.trim().is_empty());
        let yes = |k: &str| var(k).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if yes("AWS_SKIP_SIGNATURE") {
            return Source::Anonymous;
        }
        let given = set("AWS_ACCESS_KEY_ID")
            || set("AWS_SECRET_ACCESS_KEY")
            || (set("AWS_WEB_IDENTITY_TOKEN_FILE") && set("AWS_ROLE_ARN"))
            || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            || (set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
                && set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"));
        if given {
            return Source::Environment;
        }
        Source::InstanceMetadata {
            endpoint: var("AWS_METADATA_ENDPOINT")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| METADATA_ENDPOINT.into()),
            disabled: yes("AWS_EC2_METADATA_DISABLED"),
        }
    }

    /// The words for a failed request whose error (with its sources) is `chain`, when it
    /// failed for want of credentials.
    pub(super) fn explain(&self, chain: &str) -> Option<String> {
        match self {
            Source::InstanceMetadata {
                disabled: true, ..
            } if chain.contains(DISABLED) => Some(
                "no AWS credentials: none in the environment, and `AWS_EC2_METADATA_DISABLED` keeps layer from asking the instance metadata endpoint"
                    .into(),
            ),
            Source::InstanceMetadata { endpoint, .. } if chain.contains(endpoint.as_str()) => {
                Some(format!(
                    "no AWS credentials: none in the environment, and the instance metadata endpoint `{endpoint}` gave none ({chain})"
                ))
            }
            _ => None,
        }
    }
}

/// The error text of [`NoCredentials`].
const DISABLED: &str = "instance metadata disabled";

/// The credentials of an `s3://` remote with none in the environment and
/// `AWS_EC2_METADATA_DISABLED=true`: every request fails before anything is contacted.
#[derive(Debug)]
pub(super) struct NoCredentials;

impl CredentialProvider for NoCredentials {
    type Credential = AwsCredential;

    // `object_store`'s trait is an `async_trait`: its method written out as the macro would.
    fn get_credential<'a, 'b>(
        &'a self,
    ) -> Pin<Box<dyn Future<Output = object_store::Result<Arc<AwsCredential>>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async {
            Err(object_store::Error::Generic {
                store: "S3",
                source: DISABLED.into(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(vars: &[(&str, &str)]) -> Source {
        Source::find(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_string())
        })
    }

    #[test]
    fn credentials_come_from_where_the_aws_cli_looks() {
        assert_eq!(
            find(&[("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")]),
            Source::Environment
        );
        assert_eq!(
            find(&[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
                ("AWS_ROLE_ARN", "arn")
            ]),
            Source::Environment
        );
        assert_eq!(
            find(&[("AWS_SKIP_SIGNATURE", "true"), ("AWS_ACCESS_KEY_ID", "k")]),
            Source::Anonymous
        );
        assert_eq!(
            find(&[("AWS_PROFILE", "ci"), ("AWS_ACCESS_KEY_ID", "")]),
            Source::InstanceMetadata {
                endpoint: METADATA_ENDPOINT.into(),
                disabled: false
            }
        );
        assert_eq!(
            find(&[
                ("AWS_EC2_METADATA_DISABLED", "TRUE"),
                ("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9")
            ]),
            Source::InstanceMetadata {
                endpoint: "http://127.0.0.1:9".into(),
                disabled: true
            }
        );
    }

    #[test]
    fn only_credential_failures_are_explained() {
        let imds = find(&[]);
        assert_eq!(
            imds.explain("error sending request for url (http://10.0.0.1/x)"),
            None
        );
        assert_eq!(
            imds.explain("Generic S3 error: error sending request for url (http://169.254.169.254/latest/api/token)").unwrap(),
            "no AWS credentials: none in the environment, and the instance metadata endpoint `http://169.254.169.254` gave none (Generic S3 error: error sending request for url (http://169.254.169.254/latest/api/token))"
        );
        assert_eq!(Source::Environment.explain("http://169.254.169.254"), None);
    }
}
