//! Reading a request body under the webhook's limits: a size cap (announced
//! Content-Length and chunked bodies alike), a deadline for the whole body, and a
//! process-wide budget of buffered body bytes, so that many large or slow requests
//! cannot together exhaust memory. The body lands in one buffer, which the decoder
//! then borrows from.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The budget is counted in units of this many bytes (a semaphore holds at most
/// `u32::MAX` permits per acquire; KiB units keep the counts small). A client that
/// trickles its body holds one unit per KiB it actually sent, never what it announced,
/// so slow clients cannot take the budget from the API server's requests.
const BUDGET_UNIT: usize = 1024;
/// The first buffer of a body of unknown or larger length.
const MIN_CAPACITY: usize = 4 * 1024;

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request body did not arrive within {} s", .timeout.as_secs_f32())]
    Timeout { timeout: Duration },
    #[error(
        "the webhook is buffering too many request bodies at once; retry (the API server does)"
    )]
    Busy,
    #[error("cannot read the request body: {0}")]
    Read(String),
}

/// Buffered body bytes allowed across all requests at once.
#[derive(Clone, Debug)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        Self {
            units: Arc::new(Semaphore::new(bytes.div_ceil(BUDGET_UNIT))),
        }
    }

    /// Budget units free now.
    #[cfg(test)]
    pub fn available_bytes(&self) -> usize {
        self.units.available_permits() * BUDGET_UNIT
    }
}

/// A body read whole, holding its share of the budget until dropped.
#[derive(Debug)]
pub struct ReadBody {
    pub bytes: Vec<u8>,
    _budget: Vec<OwnedSemaphorePermit>,
}

/// After a 413, the rest of the body is read and discarded for up to this long (and
/// [`LINGER_BYTES`]) before the connection closes: closing a socket with unread
/// data makes the kernel send a reset, which can destroy the 413 before the client
/// reads it. The API server would then see a dropped connection instead of an answer.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);
/// At most this much of a refused body is read and discarded.
pub const LINGER_BYTES: usize = 32 * 1024 * 1024;

/// Read and discard what is left of a refused body (see [`LINGER_TIMEOUT`]), in the
/// background, so the refusal is sent meanwhile.
pub fn linger(mut body: Body) {
    tokio::spawn(async move {
        let discard = async {
            let mut read = 0;
            while let Some(Ok(frame)) = body.frame().await {
                read += frame.data_ref().map_or(0, bytes::Bytes::len);
                if read > LINGER_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIMEOUT, discard).await;
    });
}

/// Read `body` (announced by `headers`) within `timeout`, at most `limit` bytes.
/// On an error, what is left of the body stays in `body`.
pub async fn read(
    body: &mut Body,
    headers: &HeaderMap,
    limit: usize,
    timeout: Duration,
    budget: &BodyBudget,
) -> Result<ReadBody, BodyError> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let deadline = Instant::now() + timeout;
    let mut reader = Reader {
        body,
        limit,
        announced: announced.map(|n| n as usize),
        budget,
        bytes: Vec::new(),
        permits: Vec::new(),
        reserved: 0,
    };
    match tokio::time::timeout_at(deadline, reader.fill(deadline)).await {
        Ok(result) => result?,
        Err(_) => return Err(BodyError::Timeout { timeout }),
    }
    Ok(ReadBody {
        bytes: reader.bytes,
        _budget: reader.permits,
    })
}

struct Reader<'a> {
    body: &'a mut Body,
    limit: usize,
    /// Content-Length, when announced (at most `limit`).
    announced: Option<usize>,
    budget: &'a BodyBudget,
    bytes: Vec<u8>,
    permits: Vec<OwnedSemaphorePermit>,
    /// Bytes covered by `permits`.
    reserved: usize,
}

impl Reader<'_> {
    async fn fill(&mut self, deadline: Instant) -> Result<(), BodyError> {
        while let Some(frame) = self.body.frame().await {
            let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            let len = self.bytes.len() + data.len();
            if len > self.limit {
                return Err(BodyError::TooLarge { limit: self.limit });
            }
            self.reserve(len, deadline).await?;
            if self.bytes.capacity() < len {
                // Memory is taken as the body arrives, doubling, never beyond the
                // announced length: a client that announces 3 MiB and sends one byte
                // holds one small buffer, and a review that arrives in one piece
                // gets a buffer of exactly its size.
                let doubled = (self.bytes.capacity() * 2).max(len).max(MIN_CAPACITY);
                let target = self.announced.map_or(doubled, |n| doubled.min(n).max(len));
                self.bytes.reserve_exact(target - self.bytes.len());
            }
            self.bytes.extend_from_slice(&data);
        }
        Ok(())
    }

    /// Hold budget for `total` bytes in all (waiting at most until `deadline`).
    async fn reserve(&mut self, total: usize, deadline: Instant) -> Result<(), BodyError> {
        if total <= self.reserved {
            return Ok(());
        }
        let units = u32::try_from((total - self.reserved).div_ceil(BUDGET_UNIT))
            .map_err(|_| BodyError::Busy)?;
        let acquire = self.budget.units.clone().acquire_many_owned(units);
        match tokio::time::timeout_at(deadline, acquire).await {
            Ok(Ok(permit)) => {
                self.permits.push(permit);
                self.reserved += units as usize * BUDGET_UNIT;
                Ok(())
            }
            // Closed never happens (the semaphore is never closed); either way, busy.
            Ok(Err(_)) | Err(_) => Err(BodyError::Busy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use bytes::Bytes;
    use futures::stream;
    use http_body_util::StreamBody;

    fn headers(length: Option<usize>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(n) = length {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        h
    }

    fn chunked(chunks: Vec<&'static [u8]>) -> Body {
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from_static(c))));
        Body::new(StreamBody::new(stream::iter(frames)))
    }

    #[tokio::test]
    async fn reads_a_body_and_releases_its_budget_when_dropped() {
        let budget = BodyBudget::new(1024 * 1024);
        let body = read(
            &mut chunked(vec![b"{\"a\":", b"1}"]),
            &headers(None),
            100,
            Duration::from_secs(1),
            &budget,
        )
        .await
        .unwrap();
        assert_eq!(body.bytes, b"{\"a\":1}");
        assert!(budget.available_bytes() < 1024 * 1024);
        drop(body);
        assert_eq!(budget.available_bytes(), 1024 * 1024);
    }

    #[tokio::test]
    async fn too_large_announced_or_streamed_is_refused() {
        let budget = BodyBudget::new(1024 * 1024);
        let announced = read(
            &mut Body::empty(),
            &headers(Some(101)),
            100,
            Duration::from_secs(1),
            &budget,
        )
        .await;
        assert!(matches!(announced, Err(BodyError::TooLarge { limit: 100 })));
        let streamed = read(
            &mut chunked(vec![&[b'x'; 60], &[b'x'; 60]]),
            &headers(None),
            100,
            Duration::from_secs(1),
            &budget,
        )
        .await;
        assert!(matches!(streamed, Err(BodyError::TooLarge { limit: 100 })));
        assert_eq!(budget.available_bytes(), 1024 * 1024);
    }

    #[tokio::test]
    async fn a_body_beyond_the_budget_waits_then_is_busy() {
        let budget = BodyBudget::new(2 * 1024);
        let held = read(
            &mut chunked(vec![&[b'x'; 2048]]),
            &headers(None),
            1024 * 1024,
            Duration::from_secs(1),
            &budget,
        )
        .await
        .unwrap();
        let waiting = read(
            &mut chunked(vec![b"y"]),
            &headers(None),
            1024 * 1024,
            Duration::from_millis(50),
            &budget,
        )
        .await;
        assert!(matches!(waiting, Err(BodyError::Busy)), "{waiting:?}");
        drop(held);
    }
}
