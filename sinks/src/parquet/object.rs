//! Uploading one object: a PUT, or a multipart upload aborted on failure.

use super::*;

/// What an upload reads from.
pub(super) enum Body<'a> {
    Memory(Bytes),
    File(&'a FsPath),
}

/// Upload `body` to `path`: one PUT when it fits in a part, else a multipart
/// upload of `part_size` parts (a few in flight), aborted if any part or the
/// completion fails. Either way the object appears whole or not at all, and
/// a retry starts afresh under the same key.
pub(super) async fn upload(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    body: Body<'_>,
    part_size: usize,
    parts_in_flight: usize,
) -> Result<(), SinkError> {
    let staging_err = |p: &FsPath| {
        let p = p.display().to_string();
        move |source| SinkError::Staging { path: p, source }
    };
    let len = match &body {
        Body::Memory(b) => b.len() as u64,
        Body::File(p) => tokio::fs::metadata(p).await.map_err(staging_err(p))?.len(),
    };
    if len <= part_size as u64 {
        let bytes = match body {
            Body::Memory(b) => b,
            Body::File(p) => tokio::fs::read(p).await.map_err(staging_err(p))?.into(),
        };
        store.put(path, PutPayload::from(bytes)).await?;
        return Ok(());
    }
    let mut writer =
        WriteMultipart::new_with_chunk_size(store.put_multipart(path).await?, part_size);
    match body {
        Body::Memory(b) => writer.put(b),
        Body::File(p) => {
            let mut file = match tokio::fs::File::open(p).await {
                Ok(f) => f,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(staging_err(p)(e));
                }
            };
            loop {
                let mut chunk = Vec::with_capacity(part_size);
                let read = (&mut file)
                    .take(part_size as u64)
                    .read_to_end(&mut chunk)
                    .await;
                match read {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        let _ = writer.abort().await;
                        return Err(staging_err(p)(e));
                    }
                }
                if let Err(e) = writer.wait_for_capacity(parts_in_flight).await {
                    let _ = writer.abort().await;
                    return Err(e.into());
                }
                writer.put(chunk.into());
            }
        }
    }
    writer.finish().await?;
    Ok(())
}
