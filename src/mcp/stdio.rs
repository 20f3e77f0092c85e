//! The stdio framing of `doc-serve mcp`: one JSON-RPC message per line, each line
//! checked ([`super::input`]) before rmcp reads it.
//!
//! rmcp's own stdio transport answers lines it cannot parse without their id and ends
//! the session on a notification before `initialize`, so it never reads stdin itself:
//! [`filter`] reads the lines, answers the bad ones, and forwards the rest to rmcp
//! through an in-memory pipe. rmcp's answers come back through a second pipe, and one
//! writer puts them and the refusals on stdout a whole line at a time, so the two can
//! never interleave inside a line.
//!
//! Every request gets exactly one answer. rmcp keys the requests it runs by id, so of
//! two running under one id only one would be answered: the filter keeps the ids of
//! the requests rmcp runs ([`InFlight`]) and refuses a request reusing one of them at
//! once; an id is free again when its answer goes to the writer. When stdin ends,
//! rmcp alone would wait 5 s for the requests still running and drop the rest: the
//! filter holds rmcp's input open until each is answered, within a bound, and answers
//! those still running past it with an error itself.
//!
//! A line longer than the cap (`max_body_bytes`, the cap of an HTTP body) is never
//! held: once past the cap it is answered with -32600 and its remaining bytes are
//! skipped up to the next newline. What is in memory per line is the cap plus one read
//! buffer.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::input::{self, INTERNAL_ERROR, INVALID_REQUEST, Refusal, Session, Verdict};
use crate::api::quoted;

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

/// The ids of the requests rmcp runs, each as its JSON text (`8` and `"8"` differ).
#[derive(Clone)]
struct InFlight(Arc<watch::Sender<HashSet<String>>>);

impl InFlight {
    fn new() -> InFlight {
        InFlight(Arc::new(watch::Sender::new(HashSet::new())))
    }

    /// Takes `id`; false when a running request holds it.
    fn take(&self, id: &Value) -> bool {
        self.0.send_if_modified(|ids| ids.insert(id.to_string()))
    }

    /// Frees `id`; false when no running request held it.
    fn free(&self, id: &Value) -> bool {
        self.0.send_if_modified(|ids| ids.remove(&id.to_string()))
    }

    /// Waits until no request runs, at most `bound`; the ids still taken then, freed.
    async fn drain(&self, bound: Duration) -> Vec<String> {
        let mut idle = self.0.subscribe();
        let _ = tokio::time::timeout(bound, idle.wait_for(HashSet::is_empty)).await;
        let mut left = Vec::new();
        self.0.send_modify(|ids| left.extend(ids.drain()));
        left
    }
}

/// Starts checking the lines of `input`, answering bad ones on `output`; rmcp is to
/// read and write the returned ends. Lines longer than `max_line` bytes are refused.
/// Once `input` ends, requests still running get up to `drain` to be answered.
pub fn filter<R, W>(input: R, output: W, max_line: usize, drain: Duration) -> Filtered
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    // One pipe each way, so that dropping our writing end is rmcp's end of input.
    let (rmcp_read, to_rmcp) = tokio::io::duplex(PIPE_BYTES);
    let (rmcp_write, from_rmcp) = tokio::io::duplex(PIPE_BYTES);
    let (lines, queue) = mpsc::channel(QUEUED_LINES);
    let in_flight = InFlight::new();
    tokio::spawn(forward_answers(from_rmcp, lines.clone(), in_flight.clone()));
    let reader = Reader {
        to_rmcp,
        answers: lines,
        in_flight,
        session: Session::Opening,
    };
    let reader = tokio::spawn(reader.run(input, max_line, drain));
    let writer = tokio::spawn(write_lines(output, queue));
    Filtered {
        read: rmcp_read,
        write: rmcp_write,
        pump: Pump { reader, writer },
    }
}

/// What reads stdin: where checked lines go, and what it must know to check them.
struct Reader {
    to_rmcp: DuplexStream,
    answers: mpsc::Sender<Vec<u8>>,
    in_flight: InFlight,
    session: Session,
}

impl Reader {
    /// Reads `input` a line at a time, never holding more than `max_line` bytes of one;
    /// at its end, waits for the requests still running (see [`Reader::finish`]).
    async fn run<R: AsyncRead + Unpin>(mut self, input: R, max_line: usize, drain: Duration) {
        let mut input = BufReader::with_capacity(PIPE_BYTES, input);
        let mut line = Vec::new();
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
                    Value::Null,
                    INVALID_REQUEST,
                    format!(
                        "Invalid Request: a message may be at most {max_line} bytes \
                         (max_body_bytes); this line is longer and was skipped"
                    ),
                );
                if !self.answer(&refusal).await {
                    return;
                }
            } else if !skipping {
                line.extend_from_slice(piece);
            }
            input.consume(used);
            if ends {
                let whole = !std::mem::take(&mut skipping) && !line.is_empty();
                if whole && !self.handle(&line).await {
                    return;
                }
                line.clear();
            }
            if eof {
                break;
            }
        }
        self.finish(drain).await;
    }

    /// Forwards or answers one line; false once rmcp or the output is gone.
    async fn handle(&mut self, line: &[u8]) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match input::check(line, self.session) {
            Verdict::Request { id, opens } => {
                if !self.in_flight.take(&id) {
                    let refusal = Refusal::new(
                        id.clone(),
                        INVALID_REQUEST,
                        format!(
                            "Invalid Request: a request with id {} is still in flight; wait \
                             for its answer, or use another id",
                            match &id {
                                Value::String(s) => quoted(s),
                                other => other.to_string(),
                            }
                        ),
                    );
                    return self.answer(&refusal).await;
                }
                if opens {
                    self.session = Session::Open;
                }
                self.forward(line).await
            }
            Verdict::Notification { cancels } => {
                // rmcp answers a cancelled request no more; its id is free.
                if let Some(id) = cancels {
                    self.in_flight.free(&id);
                }
                self.forward(line).await
            }
            Verdict::Refuse(refusal) => {
                tracing::debug!("refused an MCP message: {}", refusal.message);
                self.answer(&refusal).await
            }
            Verdict::Quiet(problem) => {
                if let Some(p) = problem {
                    tracing::debug!("ignored an MCP message: {}", p.message);
                }
                true
            }
        }
    }

    async fn forward(&mut self, line: &[u8]) -> bool {
        self.to_rmcp.write_all(line).await.is_ok() && self.to_rmcp.write_all(b"\n").await.is_ok()
    }

    async fn answer(&self, refusal: &Refusal) -> bool {
        self.answers.send(refusal.to_line()).await.is_ok()
    }

    /// Input ended: rmcp's input stays open until the requests it runs are answered,
    /// within `drain` and while the output is open; each still running then is
    /// answered here, with an error, and its late answer from rmcp is dropped.
    /// Dropping `to_rmcp` then ends rmcp's input, so its session ends too.
    async fn finish(self, drain: Duration) {
        let left = tokio::select! {
            left = self.in_flight.drain(drain) => left,
            // The output is gone (the client closed it): no one to answer.
            () = self.answers.closed() => return,
        };
        for id in left {
            let id = serde_json::from_str(&id).unwrap_or(Value::Null);
            let refusal = Refusal::new(
                id,
                INTERNAL_ERROR,
                format!(
                    "doc-serve mcp is exiting: its input ended and this request was still \
                     running after {} s",
                    drain.as_secs()
                ),
            );
            if !self.answer(&refusal).await {
                return;
            }
        }
    }
}

/// rmcp's answers, a line at a time, into the output queue. The answer to a request
/// frees its id; an answer to no request in flight (one cancelled, or answered above
/// as running too long) is dropped, so no request is answered twice.
async fn forward_answers(
    from_rmcp: DuplexStream,
    answers: mpsc::Sender<Vec<u8>>,
    in_flight: InFlight,
) {
    let mut from_rmcp = BufReader::new(from_rmcp);
    loop {
        let mut line = Vec::new();
        match from_rmcp.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if let Some(id) = answered_id(&line)
                    && !in_flight.free(&id)
                {
                    tracing::debug!("dropped an answer to {id}: no such request in flight");
                    continue;
                }
                if answers.send(line).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The id a line from rmcp answers, if it is a response with a usable id.
fn answered_id(line: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(line).ok()?;
    let response = v.get("result").is_some() || v.get("error").is_some();
    v.get("id")
        .filter(|id| response && input::is_usable_id(id))
        .cloned()
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

    fn ping(id: u64) -> String {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#)
    }

    /// A request rmcp (below) answers after `ms` milliseconds.
    fn slow(id: u64, ms: u64) -> String {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"slow","params":{{"ms":{ms}}}}}"#)
    }

    /// Stands in for rmcp: answers every request it reads with a result, a `slow` one
    /// after its `ms`; returns what it read, once its input ends and all is answered.
    async fn rmcp(read: DuplexStream, write: DuplexStream) -> String {
        let write = Arc::new(tokio::sync::Mutex::new(write));
        let mut lines = BufReader::new(read).lines();
        let mut read_all = String::new();
        let mut running = tokio::task::JoinSet::new();
        while let Ok(Some(line)) = lines.next_line().await {
            read_all.push_str(&line);
            read_all.push('\n');
            let v: Value = serde_json::from_str(&line).unwrap();
            let Some(id) = v.get("id").cloned() else {
                continue;
            };
            let ms = v["params"]["ms"].as_u64().unwrap_or(0);
            let write = write.clone();
            running.spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let answer = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {}});
                let mut w = write.lock().await;
                let _ = w.write_all(format!("{answer}\n").as_bytes()).await;
            });
        }
        running.join_all().await;
        read_all
    }

    /// Feeds `input` (through a small pipe, so lines arrive in pieces) to the filter in
    /// front of [`rmcp`], then returns what reached rmcp and what was answered on the
    /// output, in order.
    async fn run_with(input: Vec<u8>, max_line: usize, drain: Duration) -> (String, Vec<Value>) {
        let (mut client, stdin) = tokio::io::duplex(4096);
        let (stdout, mut client_out) = tokio::io::duplex(1 << 20);
        let (read, write, pump) = filter(stdin, stdout, max_line, drain).split();
        tokio::spawn(async move {
            client.write_all(&input).await.unwrap();
        });
        let forwarded = rmcp(read, write).await;
        pump.finish(Duration::from_secs(5)).await;
        let mut answers = String::new();
        client_out.read_to_string(&mut answers).await.unwrap();
        let answers = answers
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (forwarded, answers)
    }

    async fn run(input: Vec<u8>, max_line: usize) -> (String, Vec<Value>) {
        run_with(input, max_line, Duration::from_secs(5)).await
    }

    fn errors(answers: &[Value]) -> Vec<&Value> {
        answers
            .iter()
            .filter(|a| a.get("error").is_some())
            .collect()
    }

    #[tokio::test]
    async fn bad_lines_are_answered_and_good_ones_forwarded() {
        let mut bytes = format!("{INIT}\r\n{{bad\n").into_bytes();
        bytes.extend_from_slice(b"\xff\xfe{}\n\n \t\r\n\x0c\n");
        bytes.extend_from_slice(format!("{PING}\n{}", ping(2)).as_bytes());
        let (forwarded, answers) = run(bytes, 1 << 20).await;
        // The CR is dropped; the last line counts without its newline.
        assert_eq!(forwarded, format!("{INIT}\n{PING}\n{}\n", ping(2)));
        let errors = errors(&answers);
        let codes: Vec<_> = errors.iter().map(|a| &a["error"]["code"]).collect();
        // Invalid UTF-8, not JSON, and a form feed (not JSON whitespace).
        assert_eq!(codes, [-32700, -32700, -32700]);
        assert!(errors.iter().all(|a| a["id"].is_null()));
        assert_eq!(answers.len(), 6, "{answers:?}");
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
        let errors = errors(&answers);
        assert_eq!(errors.len(), 2, "{answers:?}");
        for a in errors {
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
        assert_eq!(answers[0]["id"], 5, "{answers:?}");
        assert_eq!(answers[0]["error"]["code"], input::NOT_INITIALIZED);
        assert_eq!(errors(&answers).len(), 1, "{answers:?}");
    }

    /// Each id is answered exactly once: a request reusing the id of one still running
    /// is refused at once, and the id is free again once answered.
    #[tokio::test]
    async fn a_reused_id_is_refused_while_its_request_runs() {
        let input = format!(
            "{INIT}\n{}\n{}\n{}\n{}\n",
            slow(9, 300),
            slow(9, 0),
            ping(9),
            r#"{"jsonrpc":"2.0","id":"9","method":"ping"}"#
        );
        let (forwarded, answers) = run(input.into_bytes(), 1 << 20).await;
        assert_eq!(
            forwarded,
            format!(
                "{INIT}\n{}\n{}\n",
                slow(9, 300),
                r#"{"jsonrpc":"2.0","id":"9","method":"ping"}"#
            )
        );
        let refused = errors(&answers);
        assert_eq!(refused.len(), 2, "{answers:?}");
        for r in refused {
            assert_eq!(
                (&r["id"], &r["error"]["code"]),
                (&Value::from(9), &(-32600).into())
            );
            assert!(
                r["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("in flight")
            );
        }
        let results: Vec<_> = answers
            .iter()
            .filter(|a| a.get("result").is_some())
            .collect();
        assert_eq!(results.len(), 3, "{answers:?}");

        // Answered, the id is free: the same request later is forwarded.
        let input = format!("{INIT}\n{}\n", ping(9));
        let mut bytes = input.clone().into_bytes();
        let (client_tx, stdin) = tokio::io::duplex(4096);
        let (stdout, mut client_out) = tokio::io::duplex(1 << 20);
        let (read, write, pump) = filter(stdin, stdout, 1 << 20, Duration::from_secs(5)).split();
        let rmcp = tokio::spawn(rmcp(read, write));
        let mut client_tx = client_tx;
        client_tx.write_all(&bytes).await.unwrap();
        let mut out = BufReader::new(&mut client_out);
        let mut line = String::new();
        for _ in 0..2 {
            line.clear();
            out.read_line(&mut line).await.unwrap();
        }
        bytes = format!("{}\n", ping(9)).into_bytes();
        client_tx.write_all(&bytes).await.unwrap();
        line.clear();
        out.read_line(&mut line).await.unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (&v["id"], &v["result"]),
            (&Value::from(9), &serde_json::json!({}))
        );
        drop(client_tx);
        assert_eq!(rmcp.await.unwrap(), format!("{input}{}\n", ping(9)));
        pump.finish(Duration::from_secs(5)).await;
    }

    /// At the end of input, requests still running are answered (rmcp's input stays
    /// open for them); past the bound, the filter answers them itself, once.
    #[tokio::test]
    async fn requests_running_at_the_end_of_input_are_answered() {
        let input = format!("{INIT}\n{}\n{}\n", slow(1, 400), slow(2, 50));
        let (_, answers) = run_with(input.into_bytes(), 1 << 20, Duration::from_secs(5)).await;
        let mut ids: Vec<_> = answers
            .iter()
            .map(|a| (a["id"].as_u64().unwrap(), a.get("result").is_some()))
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, [(0, true), (1, true), (2, true)], "{answers:?}");

        let input = format!("{INIT}\n{}\n{}\n", slow(1, 1500), slow(2, 50));
        let (_, answers) = run_with(input.into_bytes(), 1 << 20, Duration::from_millis(300)).await;
        assert_eq!(answers.len(), 3, "{answers:?}");
        let late = answers.last().unwrap();
        assert_eq!(
            (&late["id"], &late["error"]["code"]),
            (&Value::from(1), &INTERNAL_ERROR.into())
        );
        assert!(
            late["error"]["message"]
                .as_str()
                .unwrap()
                .contains("input ended")
        );
    }

    /// With the output closed (the client gone), the end of input is not held up by
    /// requests still running: there is no one to answer.
    #[tokio::test]
    async fn a_closed_output_ends_the_wait() {
        let (mut client, stdin) = tokio::io::duplex(4096);
        let (stdout, client_out) = tokio::io::duplex(4096);
        drop(client_out);
        let (read, mut write, pump) =
            filter(stdin, stdout, 1 << 20, Duration::from_secs(30)).split();
        let input = format!("{INIT}\n{}\n", slow(1, 60_000));
        client.write_all(input.as_bytes()).await.unwrap();
        drop(client);
        let begun = std::time::Instant::now();
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            // Answer the initialize: writing it finds the output closed.
            if line == INIT {
                let answer = r#"{"jsonrpc":"2.0","id":0,"result":{}}"#;
                write
                    .write_all(format!("{answer}\n").as_bytes())
                    .await
                    .unwrap();
            }
        }
        assert!(
            begun.elapsed() < Duration::from_secs(5),
            "{:?}",
            begun.elapsed()
        );
        drop(write);
        pump.finish(Duration::from_secs(1)).await;
    }

    /// A cancelled request frees its id: rmcp does not answer it.
    #[tokio::test]
    async fn a_cancelled_request_frees_its_id() {
        let cancel =
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":4}}"#;
        let input = format!("{INIT}\n{}\n{cancel}\n{}\n", slow(4, 300), ping(4));
        let (forwarded, answers) =
            run_with(input.into_bytes(), 1 << 20, Duration::from_secs(5)).await;
        assert_eq!(
            forwarded,
            format!("{INIT}\n{}\n{cancel}\n{}\n", slow(4, 300), ping(4))
        );
        // This stand-in answers the cancelled request anyway: one answer to id 4 gets
        // out (the ping's), the later one is dropped.
        let fours = answers.iter().filter(|a| a["id"] == 4).count();
        assert_eq!(fours, 1, "{answers:?}");
        assert!(errors(&answers).is_empty(), "{answers:?}");
    }
}
