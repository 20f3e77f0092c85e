//! The stdio framing of `doc-serve mcp`: one JSON-RPC message per line, each line
//! checked ([`super::input`]) before rmcp reads it.
//!
//! rmcp's own stdio transport drops lines it cannot parse without a reply and ends the
//! session on a notification before `initialize`, so it never reads stdin itself:
//! [`filter`] reads the lines, answers the bad ones, and forwards the rest to rmcp
//! through an in-memory pipe. rmcp's answers come back through a second pipe, and one
//! writer puts them and the refusals on stdout a whole line at a time, so the two can
//! never interleave inside a line.
//!
//! A line longer than the cap (`max_body_bytes`, the cap of an HTTP body) is never
//! held: once past the cap it is answered with -32600 and its remaining bytes are
//! skipped up to the next newline. What is in memory per line is the cap plus one read
//! buffer.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::input::{self, INVALID_REQUEST, Refusal, Session, Verdict};

/// Room in each in-memory pipe; a full pipe makes the writer wait, never grow.
const PIPE_BYTES: usize = 64 << 10;
/// Answers waiting for stdout.
const QUEUED_LINES: usize = 64;

/// The two ends rmcp reads and writes, and the tasks behind them.
pub struct Filtered {
    /// rmcp reads the checked lines from here.
    pub read: DuplexStream,
    /// rmcp writes its answers here.
    pub write: DuplexStream,
    pump: Pump,
}

impl Filtered {
    /// The ends for rmcp, and the pump to finish once its session is over.
    pub fn split(self) -> (DuplexStream, DuplexStream, Pump) {
        (self.read, self.write, self.pump)
    }
}

/// The tasks reading `input` and writing `output`.
pub struct Pump {
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Pump {
    /// Stops reading and lets every queued answer reach the output, within `bound`
    /// (a stalled client must not hold the process).
    pub async fn finish(self, bound: Duration) {
        self.reader.abort();
        let _ = tokio::time::timeout(bound, self.writer).await;
    }
}

/// Starts checking the lines of `input`, answering bad ones on `output`; rmcp is to
/// read and write the returned ends. Lines longer than `max_line` bytes are refused.
pub fn filter<R, W>(input: R, output: W, max_line: usize) -> Filtered
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    // One pipe each way, so that dropping our writing end is rmcp's end of input.
    let (rmcp_read, to_rmcp) = tokio::io::duplex(PIPE_BYTES);
    let (rmcp_write, from_rmcp) = tokio::io::duplex(PIPE_BYTES);
    let (lines, queue) = mpsc::channel(QUEUED_LINES);
    tokio::spawn(forward_answers(from_rmcp, lines.clone()));
    let reader = tokio::spawn(read_lines(input, to_rmcp, lines, max_line));
    let writer = tokio::spawn(write_lines(output, queue));
    Filtered {
        read: rmcp_read,
        write: rmcp_write,
        pump: Pump { reader, writer },
    }
}

/// Reads `input` a line at a time, never holding more than `max_line` bytes of one.
async fn read_lines<R: AsyncRead + Unpin>(
    input: R,
    mut to_rmcp: DuplexStream,
    answers: mpsc::Sender<Vec<u8>>,
    max_line: usize,
) {
    let mut input = BufReader::with_capacity(PIPE_BYTES, input);
    let mut line = Vec::new();
    let mut session = Session::Opening;
    // Inside a line already refused as too long: skip to its end.
    let mut skipping = false;
    loop {
        let chunk = match input.fill_buf().await {
            Ok(chunk) => chunk,
            Err(e) => {
                tracing::warn!("cannot read stdin: {e}");
                break;
            }
        };
        // End of input: a last line without a newline still counts.
        let (piece, used, ends) = match (chunk.is_empty(), memchr::memchr(b'\n', chunk)) {
            (true, _) => (&chunk[..0], 0, true),
            (false, Some(at)) => (&chunk[..at], at + 1, true),
            (false, None) => (chunk, chunk.len(), false),
        };
        let eof = chunk.is_empty();
        if !skipping && line.len() + piece.len() > max_line {
            skipping = true;
            line = Vec::new();
            let refusal = Refusal::new(
                serde_json::Value::Null,
                INVALID_REQUEST,
                format!(
                    "Invalid Request: a message may be at most {max_line} bytes \
                     (max_body_bytes); this line is longer and was skipped"
                ),
            );
            if answers.send(refusal.to_line()).await.is_err() {
                return;
            }
        } else if !skipping {
            line.extend_from_slice(piece);
        }
        input.consume(used);
        if ends {
            let whole = !std::mem::take(&mut skipping) && !line.is_empty();
            if whole && !handle(&line, &mut session, &mut to_rmcp, &answers).await {
                return;
            }
            line.clear();
        }
        if eof {
            // Dropping `to_rmcp` ends rmcp's input, so its session ends too.
            return;
        }
    }
}

/// Forwards or answers one line; false once rmcp or the output is gone.
async fn handle(
    line: &[u8],
    session: &mut Session,
    to_rmcp: &mut DuplexStream,
    answers: &mpsc::Sender<Vec<u8>>,
) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match input::check(line, *session) {
        Verdict::Opens => {
            *session = Session::Open;
            forward(line, to_rmcp).await
        }
        Verdict::Pass => forward(line, to_rmcp).await,
        Verdict::Refuse(refusal) => {
            tracing::debug!("refused an MCP message: {}", refusal.message);
            answers.send(refusal.to_line()).await.is_ok()
        }
        Verdict::Ignore(what) => {
            tracing::debug!("ignored {what}");
            true
        }
    }
}

async fn forward(line: &[u8], to_rmcp: &mut DuplexStream) -> bool {
    to_rmcp.write_all(line).await.is_ok() && to_rmcp.write_all(b"\n").await.is_ok()
}

/// rmcp's answers, a line at a time, into the output queue.
async fn forward_answers(from_rmcp: DuplexStream, answers: mpsc::Sender<Vec<u8>>) {
    let mut from_rmcp = BufReader::new(from_rmcp);
    loop {
        let mut line = Vec::new();
        match from_rmcp.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if answers.send(line).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Writes whole lines to `output`, flushing each (a client waits for it).
async fn write_lines<W: AsyncWrite + Unpin>(mut output: W, mut queue: mpsc::Receiver<Vec<u8>>) {
    while let Some(line) = queue.recv().await {
        if output.write_all(&line).await.is_err() || output.flush().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

    /// Feeds `input` (through a small pipe, so lines arrive in pieces), then returns
    /// what reached rmcp and what was answered on the output.
    async fn run(input: Vec<u8>, max_line: usize) -> (String, Vec<serde_json::Value>) {
        let (mut client, stdin) = tokio::io::duplex(4096);
        let (stdout, mut client_out) = tokio::io::duplex(1 << 20);
        let (mut read, write, pump) = filter(stdin, stdout, max_line).split();
        tokio::spawn(async move {
            client.write_all(&input).await.unwrap();
        });
        let mut forwarded = String::new();
        read.read_to_string(&mut forwarded).await.unwrap();
        drop(write);
        pump.finish(Duration::from_secs(5)).await;
        let mut answers = String::new();
        client_out.read_to_string(&mut answers).await.unwrap();
        let answers = answers
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (forwarded, answers)
    }

    #[tokio::test]
    async fn bad_lines_are_answered_and_good_ones_forwarded() {
        let mut bytes = format!("{INIT}\r\n{{bad\n").into_bytes();
        bytes.extend_from_slice(b"\xff\xfe{}\n\n");
        bytes.extend_from_slice(format!("{PING}\n{PING}").as_bytes());
        let (forwarded, answers) = run(bytes, 1 << 20).await;
        // The CR is dropped; the last line counts without its newline.
        assert_eq!(forwarded, format!("{INIT}\n{PING}\n{PING}\n"));
        let codes: Vec<_> = answers.iter().map(|a| &a["error"]["code"]).collect();
        assert_eq!(codes, [-32700, -32700]);
        assert!(answers.iter().all(|a| a["id"].is_null()));
    }

    #[tokio::test]
    async fn a_line_over_the_cap_is_refused_and_skipped() {
        let cap = 10_000;
        // Exactly the cap passes; one byte more does not, however long it goes on.
        let at_cap = format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"p\":\"{}\"}}",
            "a".repeat(cap - 37)
        );
        assert_eq!(at_cap.len(), cap);
        let over = format!("{at_cap} ");
        let huge = "b".repeat(50 * cap);
        let input = format!("{INIT}\n{at_cap}\n{over}\n{huge}\n{PING}\n");
        let (forwarded, answers) = run(input.into_bytes(), cap).await;
        assert_eq!(forwarded, format!("{INIT}\n{at_cap}\n{PING}\n"));
        assert_eq!(answers.len(), 2, "{answers:?}");
        for a in &answers {
            assert_eq!(a["error"]["code"], -32600);
            assert!(
                a["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("10000 bytes")
            );
        }
    }

    #[tokio::test]
    async fn requests_before_initialize_are_answered_notifications_dropped() {
        let call = r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#;
        let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let input = format!("{note}\n{call}\n{PING}\n{INIT}\n{call}\n");
        let (forwarded, answers) = run(input.into_bytes(), 1 << 20).await;
        assert_eq!(forwarded, format!("{PING}\n{INIT}\n{call}\n"));
        assert_eq!(answers.len(), 1, "{answers:?}");
        assert_eq!(answers[0]["id"], 5);
        assert_eq!(answers[0]["error"]["code"], input::NOT_INITIALIZED);
    }
}
