//! S3 and S3-compatible servers (s3s, Garage, MinIO, Ceph...).
//!
//! Two compatibility rules learned from Garage: bodies are sent from memory with a
//! Content-Length (never aws-chunked with a trailing checksum), and multipart completion carries
//! only part numbers and ETags. Request checksums are therefore computed only when an operation
//! requires them; the SigV4 payload hash still covers every body.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{check_key, IncompleteUpload, ObjectInfo, S3Options, Storage, Upload};
use crate::error::Error;

pub struct S3Storage {
    client: Client,
    bucket: String,
    prefix: String,
    endpoint: Option<String>,
}

/// Path-style addressing is needed for endpoints that are IP addresses or localhost: there is no
/// DNS name to put the bucket in.
pub fn wants_path_style(endpoint: &str) -> bool {
    let Ok(url) = url::Url::parse(endpoint) else {
        return false;
    };
    match url.host_str() {
        Some(h) => {
            let h = h.trim_start_matches('[').trim_end_matches(']');
            h == "localhost" || h.ends_with(".localhost") || h.parse::<IpAddr>().is_ok()
        }
        None => false,
    }
}

fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// `outer: cause: cause`, from Display only (Debug output of SDK errors is noise).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// A storage error that says what failed and what to do about it. Never includes credentials.
fn s3_error<E>(what: &str, target: &str, err: &SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let mut code = err.code().unwrap_or_default().to_string();
    if code.is_empty() {
        // HEAD responses carry no body: name the status instead.
        code = match status {
            Some(404) => "NotFound".into(),
            Some(403) => "Forbidden".into(),
            Some(s) => format!("HTTP {s}"),
            None => String::new(),
        };
    }
    let detail = match err {
        SdkError::ServiceError(_) => {
            let message = err.message().unwrap_or(match code.as_str() {
                "NotFound" => "not found",
                "Forbidden" => "access denied",
                _ => "no message",
            });
            format!("{message} ({code})")
        }
        _ => error_chain(err),
    };
    let e = Error::failed(format!("S3 {what} failed for {target}: {detail}"));
    let hint = match code.as_str() {
        "NoSuchBucket" | "NotFound" if what == "HeadBucket" || code == "NoSuchBucket" => {
            "the bucket does not exist: create it, or fix the bucket in --repo"
        }
        "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidSignature" => {
            "the S3 credentials were refused: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
        }
        "AccessDenied" | "Forbidden" => {
            "the S3 credentials were refused or lack permission: check AWS_ACCESS_KEY_ID / \
             AWS_SECRET_ACCESS_KEY, and allow s3:ListBucket, PutObject, GetObject, DeleteObject, \
             ListBucketMultipartUploads and AbortMultipartUpload on the repository"
        }
        "AuthorizationHeaderMalformed" => "the region does not match the server's: set --s3-region",
        _ if matches!(err, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)) => {
            if detail.contains("credentials") {
                "no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
            } else {
                "the S3 endpoint could not be reached: check --s3-endpoint / AWS_ENDPOINT_URL and the network"
            }
        }
        _ => "check the repository URL, endpoint and credentials",
    };
    e.hint(hint)
}

impl S3Storage {
    pub async fn open(bucket: &str, prefix: &str, opts: &S3Options) -> Result<S3Storage> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &opts.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &opts.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk = loader.load().await;
        let endpoint = opts
            .endpoint
            .clone()
            .or_else(|| sdk.endpoint_url().map(str::to_string));
        let path_style = opts.force_path_style || endpoint.as_deref().is_some_and(wants_path_style);
        let mut conf = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(5)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(10)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .build(),
            );
        if sdk.region().is_none() {
            conf = conf.region(Region::new("us-east-1"));
        }
        Ok(S3Storage {
            client: Client::from_conf(conf.build()),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint,
        })
    }

    fn full_key(&self, key: &str) -> Result<String, Error> {
        check_key(key)?;
        Ok(format!("{}{}", self.prefix, key))
    }

    fn target(&self, key: &str) -> String {
        format!("s3://{}/{}{}", self.bucket, self.prefix, key)
    }
}

#[async_trait]
impl Storage for S3Storage {
    fn describe(&self) -> String {
        let base = format!("s3://{}/{}", self.bucket, self.prefix);
        match &self.endpoint {
            Some(e) => format!("{base} (endpoint {e})"),
            None => base,
        }
    }

    fn location(&self, key: &str) -> String {
        self.target(key)
    }

    async fn check(&self) -> Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| s3_error("HeadBucket", &self.target(""), &e))?;
        Ok(())
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let full = self.full_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .content_length(data.len() as i64)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| s3_error("PutObject", &self.target(key), &e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let collect = async {
            let mut data = bytes::BytesMut::new();
            while let Some(chunk) = rx.recv().await {
                data.extend_from_slice(&chunk);
            }
            data.freeze()
        };
        let (found, data) = tokio::join!(self.download(key, tx), collect);
        Ok(found?.then_some(data))
    }

    async fn download(&self, key: &str, sink: tokio::sync::mpsc::Sender<Bytes>) -> Result<bool> {
        let full = self.full_key(key)?;
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(out) => out,
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => return Ok(false),
            Err(e) => return Err(s3_error("GetObject", &self.target(key), &e).into()),
        };
        let mut body = out.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                Error::failed(format!(
                    "S3 GetObject failed for {} while reading: {}",
                    self.target(key),
                    error_chain(&e)
                ))
                .hint("the connection to the S3 endpoint broke; run the command again")
            })?;
            if sink.send(chunk).await.is_err() {
                break;
            }
        }
        Ok(true)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let full = format!("{}{}", self.prefix, prefix);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_error("ListObjectsV2", &self.target(prefix), &e))?;
            for o in page.contents() {
                let Some(key) = o.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                objects.push(ObjectInfo {
                    key: key.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    modified: o.last_modified().and_then(to_chrono),
                });
            }
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let full = self.full_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| s3_error("DeleteObject", &self.target(key), &e))?;
        Ok(())
    }

    async fn begin_upload(&self, key: &str) -> Result<Box<dyn Upload>> {
        let full = self.full_key(key)?;
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .content_type("application/octet-stream")
            .send()
            .await
            .map_err(|e| s3_error("CreateMultipartUpload", &self.target(key), &e))?;
        let upload_id = out
            .upload_id()
            .ok_or_else(|| Error::failed("S3 CreateMultipartUpload returned no upload id"))?
            .to_string();
        Ok(Box::new(S3Upload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: full,
            target: self.target(key),
            upload_id,
            parts: Mutex::new(Vec::new()),
        }))
    }

    async fn abort_incomplete(&self, upload: &IncompleteUpload) -> Result<()> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(format!("{}{}", self.prefix, upload.key))
            .upload_id(&upload.upload_id)
            .send()
            .await
            .map_err(|e| s3_error("AbortMultipartUpload", &self.target(&upload.key), &e))?;
        Ok(())
    }

    async fn incomplete_uploads(&self, prefix: &str) -> Result<Vec<IncompleteUpload>> {
        let full = format!("{}{}", self.prefix, prefix);
        let mut uploads = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&full)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await;
            let page = match page {
                Ok(page) => page,
                // Some S3-compatible servers (s3s-fs) cannot list uploads; say so, don't fail.
                Err(e) if e.code() == Some("NotImplemented") => {
                    tracing::warn!(
                        "this S3 server cannot list unfinished multipart uploads; \
                         leftovers of interrupted runs cannot be shown"
                    );
                    return Ok(uploads);
                }
                Err(e) => {
                    return Err(s3_error("ListMultipartUploads", &self.target(prefix), &e).into())
                }
            };
            for u in page.uploads() {
                let (Some(key), Some(id)) = (u.key(), u.upload_id()) else {
                    continue;
                };
                uploads.push(IncompleteUpload {
                    key: key.strip_prefix(&self.prefix).unwrap_or(key).to_string(),
                    upload_id: id.to_string(),
                    started: u.initiated().and_then(to_chrono),
                });
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() && id_marker.is_none() {
                break;
            }
        }
        Ok(uploads)
    }
}

struct S3Upload {
    client: Client,
    bucket: String,
    key: String,
    target: String,
    upload_id: String,
    parts: Mutex<Vec<(i32, String)>>,
}

#[async_trait]
impl Upload for S3Upload {
    async fn put_part(&self, number: u32, _offset: u64, data: Bytes) -> Result<()> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number as i32)
            .content_length(data.len() as i64)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| s3_error(&format!("UploadPart {number}"), &self.target, &e))?;
        let etag = out
            .e_tag()
            .ok_or_else(|| Error::failed(format!("S3 UploadPart {number} returned no ETag")))?;
        self.parts
            .lock()
            .expect("parts lock")
            .push((number as i32, etag.to_string()));
        Ok(())
    }

    async fn complete(&self) -> Result<()> {
        let mut parts = std::mem::take(&mut *self.parts.lock().expect("parts lock"));
        parts.sort();
        // Only part numbers and ETags: Garage rejects per-part checksums the upload did not declare.
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .into_iter()
                    .map(|(n, etag)| CompletedPart::builder().part_number(n).e_tag(etag).build())
                    .collect(),
            ))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map_err(|e| s3_error("CompleteMultipartUpload", &self.target, &e))?;
        Ok(())
    }

    async fn abort(&self) -> Result<()> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await
            .map_err(|e| s3_error("AbortMultipartUpload", &self.target, &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_style_for_ips_and_localhost() {
        assert!(wants_path_style("http://127.0.0.1:9000"));
        assert!(wants_path_style("http://localhost:3900"));
        assert!(wants_path_style("http://[::1]:9000"));
        assert!(!wants_path_style("https://s3.eu-west-1.amazonaws.com"));
        assert!(!wants_path_style("not a url"));
    }
}
