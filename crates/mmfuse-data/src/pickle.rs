//! A small, safe reader of Python pickles (protocols 0–5, the subset that data files use) and of
//! the numpy arrays inside them. It builds an inert value tree and never imports or calls
//! anything: `GLOBAL` + `REDUCE` / `NEWOBJ` / `BUILD` become [`Value::Object`] nodes that only
//! record the module, name, arguments and state. A few well-known constructors are then
//! interpreted as data: numpy arrays (`numpy[._]core.multiarray._reconstruct` + `BUILD`,
//! protocol 5's `numpy[._]core.numeric._frombuffer`), numpy scalars (`…multiarray.scalar`, read as
//! 0-d arrays), `_codecs.encode(str, 'latin1')` (protocol-2 bytes), `bytes()`, `bytearray`,
//! `set` and `frozenset`.
//!
//! Safety: length fields larger than the remaining input, memo references to unknown slots,
//! nesting deeper than [`MAX_DEPTH`] and shared-subtree blow-ups (a value referenced many times
//! through the memo) are errors, never panics or huge allocations. Errors carry the byte offset
//! of the offending opcode.

use crate::error::{DataError, Result};
use std::collections::HashMap;
use std::path::Path;

/// Deepest nesting of containers accepted (data pickles are a handful of levels deep).
pub const MAX_DEPTH: usize = 200;

/// A Python value, as far as data files need one.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit in `i64`: little-endian two's complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    /// `bytes`, `bytearray`, and Python 2 `str` (protocols 0–2 `STRING` / `BINSTRING`).
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Entries in insertion order.
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    /// A bare reference to `module.name` (never imported).
    Global {
        module: String,
        name: String,
    },
    /// An inert record of `module.name(*args)` with the `BUILD` state, if any; nothing was called.
    Object {
        module: String,
        name: String,
        args: Vec<Value>,
        state: Option<Box<Value>>,
    },
    /// A decoded numpy array (numpy scalars are 0-d arrays).
    Array(NdArray),
}

/// A numpy array in C (row-major) order; Fortran-ordered input is reordered.
#[derive(Clone, Debug, PartialEq)]
pub struct NdArray {
    pub shape: Vec<usize>,
    pub data: ArrayData,
}

/// The elements of an [`NdArray`], by dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayData {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// `<U n` fixed-width unicode, trailing NULs removed (as numpy does).
    Str(Vec<String>),
    /// dtype `O`: arbitrary Python values.
    Object(Vec<Value>),
}

impl ArrayData {
    pub fn len(&self) -> usize {
        match self {
            ArrayData::Bool(v) => v.len(),
            ArrayData::U8(v) => v.len(),
            ArrayData::I8(v) => v.len(),
            ArrayData::I16(v) => v.len(),
            ArrayData::I32(v) => v.len(),
            ArrayData::I64(v) => v.len(),
            ArrayData::U16(v) => v.len(),
            ArrayData::U32(v) => v.len(),
            ArrayData::U64(v) => v.len(),
            ArrayData::F32(v) => v.len(),
            ArrayData::F64(v) => v.len(),
            ArrayData::Str(v) => v.len(),
            ArrayData::Object(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The numpy dtype name (`float32`, `<U`, `object`, …).
    pub fn dtype_name(&self) -> &'static str {
        match self {
            ArrayData::Bool(_) => "bool",
            ArrayData::U8(_) => "uint8",
            ArrayData::I8(_) => "int8",
            ArrayData::I16(_) => "int16",
            ArrayData::I32(_) => "int32",
            ArrayData::I64(_) => "int64",
            ArrayData::U16(_) => "uint16",
            ArrayData::U32(_) => "uint32",
            ArrayData::U64(_) => "uint64",
            ArrayData::F32(_) => "float32",
            ArrayData::F64(_) => "float64",
            ArrayData::Str(_) => "<U",
            ArrayData::Object(_) => "object",
        }
    }
}

impl NdArray {
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements as f64 (numeric dtypes, and object arrays of numbers).
    pub fn to_f64(&self) -> std::result::Result<Vec<f64>, String> {
        Ok(match &self.data {
            ArrayData::Bool(v) => v.iter().map(|&b| b as u8 as f64).collect(),
            ArrayData::U8(v) => v.iter().map(|&x| x as f64).collect(),
            ArrayData::I8(v) => v.iter().map(|&x| x as f64).collect(),
            ArrayData::I16(v) => v.iter().map(|&x| x as f64).collect(),
            ArrayData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            ArrayData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            ArrayData::U16(v) => v.iter().map(|&x| x as f64).collect(),
            ArrayData::U32(v) => v.iter().map(|&x| x as f64).collect(),
            ArrayData::U64(v) => v.iter().map(|&x| x as f64).collect(),
            ArrayData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            ArrayData::F64(v) => v.clone(),
            ArrayData::Str(_) => return Err("a string array is not numeric".into()),
            ArrayData::Object(v) => {
                v.iter().map(|x| x.as_f64().ok_or_else(|| format!("object array holds a non-number ({})", x.kind()))).collect::<std::result::Result<_, _>>()?
            }
        })
    }

    /// The elements as f32 (f64 values are rounded to nearest, as numpy's `astype` does).
    pub fn to_f32(&self) -> std::result::Result<Vec<f32>, String> {
        match &self.data {
            ArrayData::F32(v) => Ok(v.clone()),
            _ => Ok(self.to_f64()?.into_iter().map(|x| x as f32).collect()),
        }
    }

    /// The elements as strings (`<U` arrays, and object arrays of `str`/UTF-8 `bytes`).
    pub fn to_strings(&self) -> std::result::Result<Vec<String>, String> {
        match &self.data {
            ArrayData::Str(v) => Ok(v.clone()),
            ArrayData::Object(v) => {
                v.iter().map(|x| x.as_str().map(str::to_string).ok_or_else(|| format!("object array holds a non-string ({})", x.kind()))).collect()
            }
            d => Err(format!("a {} array holds no strings", d.dtype_name())),
        }
    }
}

impl Value {
    /// A short name of the variant, for error messages.
    pub fn kind(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) | Value::BigInt(_) => "int".into(),
            Value::Float(_) => "float".into(),
            Value::Str(_) => "str".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::List(_) => "list".into(),
            Value::Tuple(_) => "tuple".into(),
            Value::Dict(_) => "dict".into(),
            Value::Set(_) => "set".into(),
            Value::Global { module, name } => format!("global {module}.{name}"),
            Value::Object { module, name, .. } => format!("object {module}.{name} (inert, never called)"),
            Value::Array(a) => format!("{} array of shape {:?}", a.data.dtype_name(), a.shape),
        }
    }

    /// `str`, or `bytes` holding UTF-8 (Python 2 strings).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// A single number: `bool`, `int`, `float`, or a numeric array with exactly one element
    /// (numpy scalars, `[[x]]`).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Bool(b) => Some(*b as u8 as f64),
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Array(a) if a.len() == 1 => a.to_f64().ok().map(|v| v[0]),
            _ => None,
        }
    }

    /// The items of a list or tuple.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Tuple(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&NdArray> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The value under a string key of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string keys of a dict (others skipped).
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Value::Dict(items) => items.iter().filter_map(|(k, _)| k.as_str()).collect(),
            _ => vec![],
        }
    }
}

/// Read and parse a pickle file. Errors name the file and the byte offset.
pub fn read_pickle(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse(&bytes).map_err(|m| DataError::Other(format!("pickle {}: {m}", path.display())))
}

/// Parse pickle bytes into a value tree. The error says what went wrong and at which byte.
pub fn parse(bytes: &[u8]) -> std::result::Result<Value, String> {
    let mut m = Machine { data: bytes, pos: 0, nodes: Vec::new(), stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() };
    let root = m.run()?;
    let budget_nodes = bytes.len().saturating_mul(16).saturating_add(100_000);
    let budget_bytes = bytes.len().saturating_mul(2).saturating_add(1 << 20);
    let mut b = Builder { nodes: &m.nodes, nodes_left: budget_nodes, bytes_left: budget_bytes };
    b.build(root, 0)
}

/// Arena node: containers refer to other nodes by index, so that memo references and in-place
/// mutation (`APPEND` after `MEMOIZE`) behave as in Python.
#[derive(Debug)]
enum Node {
    None,
    Bool(bool),
    Int(i64),
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Set(Vec<usize>),
    Global { module: String, name: String },
    Object { module: String, name: String, args: Vec<usize>, state: Option<usize>, offset: usize },
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    stack: Vec<usize>,
    marks: Vec<usize>,
    memo: HashMap<u64, usize>,
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: u64, at: usize) -> std::result::Result<&'a [u8], String> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return Err(format!("at byte {at}: length {n} runs past the end of the input ({left} bytes left)"));
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }
    fn u8(&mut self, at: usize) -> std::result::Result<u8, String> {
        Ok(self.take(1, at)?[0])
    }
    fn u16(&mut self, at: usize) -> std::result::Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2, at)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self, at: usize) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4, at)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self, at: usize) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8, at)?.try_into().expect("8 bytes")))
    }
    fn line(&mut self, at: usize) -> std::result::Result<&'a str, String> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or_else(|| format!("at byte {at}: text argument without a newline"))?;
        self.pos += n + 1;
        let l = &rest[..n];
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        std::str::from_utf8(l).map_err(|_| format!("at byte {at}: text argument is not UTF-8"))
    }
    fn push(&mut self, n: Node) {
        self.nodes.push(n);
        self.stack.push(self.nodes.len() - 1);
    }
    fn pop(&mut self, at: usize) -> std::result::Result<usize, String> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(format!("at byte {at}: stack underflow"));
        }
        Ok(self.stack.pop().expect("non-empty"))
    }
    fn top(&self, at: usize) -> std::result::Result<usize, String> {
        self.stack.last().copied().ok_or_else(|| format!("at byte {at}: empty stack"))
    }
    fn pop_mark(&mut self, at: usize) -> std::result::Result<Vec<usize>, String> {
        let m = self.marks.pop().ok_or_else(|| format!("at byte {at}: no MARK on the stack"))?;
        if m > self.stack.len() {
            return Err(format!("at byte {at}: corrupt MARK"));
        }
        Ok(self.stack.split_off(m))
    }
    fn str_of(&self, id: usize, at: usize) -> std::result::Result<String, String> {
        match &self.nodes[id] {
            Node::Str(s) => Ok(s.clone()),
            _ => Err(format!("at byte {at}: expected a string for STACK_GLOBAL")),
        }
    }
    fn tuple_items(&self, id: usize, at: usize, what: &str) -> std::result::Result<Vec<usize>, String> {
        match &self.nodes[id] {
            Node::Tuple(v) => Ok(v.clone()),
            _ => Err(format!("at byte {at}: {what} arguments are not a tuple")),
        }
    }
    fn object(&mut self, callable: usize, args: Vec<usize>, at: usize) -> std::result::Result<(), String> {
        let (module, name) = match &self.nodes[callable] {
            Node::Global { module, name } => (module.clone(), name.clone()),
            _ => return Err(format!("at byte {at}: call of something that is not a global")),
        };
        self.push(Node::Object { module, name, args, state: None, offset: at });
        Ok(())
    }
    fn memo_get(&mut self, key: u64, at: usize) -> std::result::Result<(), String> {
        let id = *self.memo.get(&key).ok_or_else(|| format!("at byte {at}: memo slot {key} is empty"))?;
        self.stack.push(id);
        Ok(())
    }
    fn memo_put(&mut self, key: u64, at: usize) -> std::result::Result<(), String> {
        let id = self.top(at)?;
        self.memo.insert(key, id);
        Ok(())
    }

    fn run(&mut self) -> std::result::Result<usize, String> {
        loop {
            let at = self.pos;
            let op = self.take(1, at).map_err(|_| format!("at byte {at}: input ends before STOP"))?[0];
            match op {
                0x80 => {
                    let p = self.u8(at)?;
                    if p > 5 {
                        return Err(format!("at byte {at}: unsupported pickle protocol {p}"));
                    }
                }
                0x95 => {
                    self.u64(at)?;
                }
                b'.' => {
                    let id = self.pop(at)?;
                    return Ok(id);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'}' => self.push(Node::Dict(vec![])),
                b']' => self.push(Node::List(vec![])),
                b')' => self.push(Node::Tuple(vec![])),
                0x8f => self.push(Node::Set(vec![])),
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = vec![0; n];
                    for i in (0..n).rev() {
                        items[i] = self.pop(at)?;
                    }
                    self.push(Node::Tuple(items));
                }
                b't' => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::Tuple(items));
                }
                b'l' => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::List(items));
                }
                0x91 => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::Set(items));
                }
                b'd' => {
                    let items = self.pop_mark(at)?;
                    if items.len() % 2 != 0 {
                        return Err(format!("at byte {at}: DICT with an odd number of items"));
                    }
                    self.push(Node::Dict(items.chunks(2).map(|c| (c[0], c[1])).collect()));
                }
                b'a' => {
                    let v = self.pop(at)?;
                    let l = self.top(at)?;
                    match &mut self.nodes[l] {
                        Node::List(items) => items.push(v),
                        _ => return Err(format!("at byte {at}: APPEND to a non-list")),
                    }
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark(at)?;
                    let l = self.top(at)?;
                    match (&mut self.nodes[l], op) {
                        (Node::List(v), b'e') | (Node::Set(v), 0x90) => v.extend(items),
                        _ => return Err(format!("at byte {at}: APPENDS/ADDITEMS to the wrong kind of object")),
                    }
                }
                b's' => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    let d = self.top(at)?;
                    match &mut self.nodes[d] {
                        Node::Dict(items) => items.push((k, v)),
                        _ => return Err(format!("at byte {at}: SETITEM on a non-dict")),
                    }
                }
                b'u' => {
                    let items = self.pop_mark(at)?;
                    if items.len() % 2 != 0 {
                        return Err(format!("at byte {at}: SETITEMS with an odd number of items"));
                    }
                    let d = self.top(at)?;
                    match &mut self.nodes[d] {
                        Node::Dict(v) => v.extend(items.chunks(2).map(|c| (c[0], c[1]))),
                        _ => return Err(format!("at byte {at}: SETITEMS on a non-dict")),
                    }
                }
                b'0' => {
                    self.pop(at)?;
                }
                b'1' => {
                    self.pop_mark(at)?;
                }
                b'2' => {
                    let t = self.top(at)?;
                    self.stack.push(t);
                }
                b'N' => self.push(Node::None),
                0x88 => self.push(Node::Bool(true)),
                0x89 => self.push(Node::Bool(false)),
                b'J' => {
                    let v = self.u32(at)? as i32;
                    self.push(Node::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8(at)?;
                    self.push(Node::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16(at)?;
                    self.push(Node::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a { self.u8(at)? as i64 } else { self.u32(at)? as i32 as i64 };
                    if n < 0 {
                        return Err(format!("at byte {at}: negative LONG4 length"));
                    }
                    let n = n as u64;
                    let b = self.take(n, at)?;
                    self.push(long_node(b));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8, at)?.try_into().expect("8 bytes"));
                    self.push(Node::Float(v));
                }
                0x8c | b'X' | 0x8d => {
                    let n = match op {
                        0x8c => self.u8(at)? as u64,
                        b'X' => self.u32(at)? as u64,
                        _ => self.u64(at)?,
                    };
                    let b = self.take(n, at)?;
                    // Python writes lone surrogates with "surrogatepass"; keep going with U+FFFD
                    let s = String::from_utf8_lossy(b).into_owned();
                    self.push(Node::Str(s));
                }
                b'C' | b'B' | 0x8e | 0x96 | b'U' | b'T' => {
                    let n = match op {
                        b'C' | b'U' => self.u8(at)? as u64,
                        b'B' => self.u32(at)? as u64,
                        b'T' => {
                            let n = self.u32(at)? as i32;
                            if n < 0 {
                                return Err(format!("at byte {at}: negative BINSTRING length"));
                            }
                            n as u64
                        }
                        _ => self.u64(at)?,
                    };
                    let b = self.take(n, at)?.to_vec();
                    self.push(Node::Bytes(b));
                }
                b'I' => {
                    let l = self.line(at)?;
                    let n = match l {
                        "00" => Node::Bool(false),
                        "01" => Node::Bool(true),
                        _ => Node::Int(l.parse().map_err(|_| format!("at byte {at}: bad INT {l:?}"))?),
                    };
                    self.push(n);
                }
                b'L' => {
                    let l = self.line(at)?;
                    let v = l.strip_suffix('L').unwrap_or(l).parse().map_err(|_| format!("at byte {at}: LONG {l:?} unsupported"))?;
                    self.push(Node::Int(v));
                }
                b'F' => {
                    let l = self.line(at)?;
                    let v = l.parse().map_err(|_| format!("at byte {at}: bad FLOAT {l:?}"))?;
                    self.push(Node::Float(v));
                }
                b'V' => {
                    let l = self.line(at)?;
                    let s = raw_unicode_escape(l).ok_or_else(|| format!("at byte {at}: bad UNICODE escape"))?;
                    self.push(Node::Str(s));
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k, at)?;
                }
                b'q' => {
                    let k = self.u8(at)? as u64;
                    self.memo_put(k, at)?;
                }
                b'r' => {
                    let k = self.u32(at)? as u64;
                    self.memo_put(k, at)?;
                }
                b'p' => {
                    let l = self.line(at)?;
                    let k = l.parse().map_err(|_| format!("at byte {at}: bad PUT index"))?;
                    self.memo_put(k, at)?;
                }
                b'h' => {
                    let k = self.u8(at)? as u64;
                    self.memo_get(k, at)?;
                }
                b'j' => {
                    let k = self.u32(at)? as u64;
                    self.memo_get(k, at)?;
                }
                b'g' => {
                    let l = self.line(at)?;
                    let k = l.parse().map_err(|_| format!("at byte {at}: bad GET index"))?;
                    self.memo_get(k, at)?;
                }
                b'c' => {
                    let module = self.line(at)?.to_string();
                    let name = self.line(at)?.to_string();
                    self.push(Node::Global { module, name });
                }
                0x93 => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let (module, name) = (self.str_of(module, at)?, self.str_of(name, at)?);
                    self.push(Node::Global { module, name });
                }
                b'R' => {
                    let args = self.pop(at)?;
                    let callable = self.pop(at)?;
                    let args = self.tuple_items(args, at, "REDUCE")?;
                    self.object(callable, args, at)?;
                }
                0x81 => {
                    let args = self.pop(at)?;
                    let cls = self.pop(at)?;
                    let args = self.tuple_items(args, at, "NEWOBJ")?;
                    self.object(cls, args, at)?;
                }
                0x92 => {
                    let _kwargs = self.pop(at)?;
                    let args = self.pop(at)?;
                    let cls = self.pop(at)?;
                    let args = self.tuple_items(args, at, "NEWOBJ_EX")?;
                    self.object(cls, args, at)?;
                }
                b'o' => {
                    let mut items = self.pop_mark(at)?;
                    if items.is_empty() {
                        return Err(format!("at byte {at}: OBJ without a class"));
                    }
                    let cls = items.remove(0);
                    self.object(cls, items, at)?;
                }
                b'i' => {
                    let module = self.line(at)?.to_string();
                    let name = self.line(at)?.to_string();
                    let items = self.pop_mark(at)?;
                    self.push(Node::Object { module, name, args: items, state: None, offset: at });
                }
                b'b' => {
                    let state = self.pop(at)?;
                    let obj = self.top(at)?;
                    match &mut self.nodes[obj] {
                        Node::Object { state: s, .. } => *s = Some(state),
                        _ => return Err(format!("at byte {at}: BUILD on something that is not an object")),
                    }
                }
                0x98 => {} // READONLY_BUFFER: no-op on in-band data
                0x97 => return Err(format!("at byte {at}: out-of-band buffers (NEXT_BUFFER) are not supported")),
                b'P' | b'Q' => return Err(format!("at byte {at}: persistent ids are not supported")),
                0x82..=0x84 => return Err(format!("at byte {at}: extension registry codes are not supported")),
                b'S' => return Err(format!("at byte {at}: protocol-0 STRING is not supported")),
                _ => return Err(format!("at byte {at}: unknown or unsupported opcode 0x{op:02x}")),
            }
        }
    }
}

fn long_node(b: &[u8]) -> Node {
    if b.is_empty() {
        return Node::Int(0);
    }
    if b.len() <= 8 {
        let neg = b[b.len() - 1] & 0x80 != 0;
        let mut buf = [if neg { 0xff } else { 0 }; 8];
        buf[..b.len()].copy_from_slice(b);
        return Node::Int(i64::from_le_bytes(buf));
    }
    Node::BigInt(b.to_vec())
}

/// Python's `raw-unicode-escape`: `\uXXXX` and `\UXXXXXXXX` escapes, everything else literal.
fn raw_unicode_escape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\\' && matches!(it.peek(), Some('u') | Some('U')) {
            let n = if it.next() == Some('u') { 4 } else { 8 };
            let hex: String = (0..n).filter_map(|_| it.next()).collect();
            if hex.len() != n {
                return None;
            }
            out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

struct Builder<'a> {
    nodes: &'a [Node],
    nodes_left: usize,
    bytes_left: usize,
}

impl Builder<'_> {
    fn charge(&mut self, bytes: usize) -> std::result::Result<(), String> {
        if self.nodes_left == 0 || self.bytes_left < bytes {
            return Err("the value tree is far larger than the input (shared references expand too much)".into());
        }
        self.nodes_left -= 1;
        self.bytes_left -= bytes;
        Ok(())
    }

    fn build(&mut self, id: usize, depth: usize) -> std::result::Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nesting deeper than {MAX_DEPTH} levels (or a self-referencing container)"));
        }
        let d = depth + 1;
        Ok(match &self.nodes[id] {
            Node::None => {
                self.charge(0)?;
                Value::None
            }
            Node::Bool(b) => {
                self.charge(0)?;
                Value::Bool(*b)
            }
            Node::Int(i) => {
                self.charge(0)?;
                Value::Int(*i)
            }
            Node::Float(f) => {
                self.charge(0)?;
                Value::Float(*f)
            }
            Node::BigInt(b) => {
                self.charge(b.len())?;
                Value::BigInt(b.clone())
            }
            Node::Str(s) => {
                self.charge(s.len())?;
                Value::Str(s.clone())
            }
            Node::Bytes(b) => {
                self.charge(b.len())?;
                Value::Bytes(b.clone())
            }
            Node::List(v) => {
                self.charge(0)?;
                Value::List(v.iter().map(|&i| self.build(i, d)).collect::<std::result::Result<_, _>>()?)
            }
            Node::Tuple(v) => {
                self.charge(0)?;
                Value::Tuple(v.iter().map(|&i| self.build(i, d)).collect::<std::result::Result<_, _>>()?)
            }
            Node::Set(v) => {
                self.charge(0)?;
                Value::Set(v.iter().map(|&i| self.build(i, d)).collect::<std::result::Result<_, _>>()?)
            }
            Node::Dict(v) => {
                self.charge(0)?;
                let mut out = Vec::with_capacity(v.len());
                for &(k, x) in v {
                    out.push((self.build(k, d)?, self.build(x, d)?));
                }
                Value::Dict(out)
            }
            Node::Global { module, name } => {
                self.charge(module.len() + name.len())?;
                Value::Global { module: module.clone(), name: name.clone() }
            }
            Node::Object { module, name, args, state, offset } => {
                self.charge(module.len() + name.len())?;
                let args = args.iter().map(|&i| self.build(i, d)).collect::<std::result::Result<Vec<_>, _>>()?;
                let state = match state {
                    Some(s) => Some(Box::new(self.build(*s, d)?)),
                    None => None,
                };
                interpret(module, name, args, state).map_err(|e| format!("at byte {offset}: {module}.{name}: {e}"))?
            }
        })
    }
}

fn is_numpy(module: &str, sub: &str) -> bool {
    module == format!("numpy.core.{sub}") || module == format!("numpy._core.{sub}")
}

/// Turn the few well-known constructors into data; everything else stays an inert `Object`.
fn interpret(module: &str, name: &str, args: Vec<Value>, state: Option<Box<Value>>) -> std::result::Result<Value, String> {
    let builtins = module == "builtins" || module == "__builtin__";
    match (module, name) {
        ("_codecs", "encode") => {
            if let [Value::Str(s), Value::Str(enc)] = args.as_slice()
                && matches!(enc.as_str(), "latin1" | "latin-1" | "iso-8859-1")
            {
                return s
                    .chars()
                    .map(|c| u8::try_from(c as u32).map_err(|_| "character above U+00FF in latin1 data".to_string()))
                    .collect::<std::result::Result<Vec<u8>, _>>()
                    .map(Value::Bytes);
            }
        }
        (_, "bytes" | "bytearray") if builtins => match args.as_slice() {
            [] => return Ok(Value::Bytes(vec![])),
            [Value::Bytes(b)] => return Ok(Value::Bytes(b.clone())),
            _ => {}
        },
        (_, "set" | "frozenset") if builtins => match args.as_slice() {
            [] => return Ok(Value::Set(vec![])),
            [Value::List(v) | Value::Tuple(v) | Value::Set(v)] => return Ok(Value::Set(v.clone())),
            _ => {}
        },
        (m, "_reconstruct") if is_numpy(m, "multiarray") => {
            if let Some(s) = &state {
                return reconstruct(s).map(Value::Array);
            }
        }
        (m, "scalar") if is_numpy(m, "multiarray") => {
            let (dtype, data) = match args.as_slice() {
                [dt, Value::Bytes(b)] => (dtype_of(dt)?, b.clone()),
                [dt, Value::Str(s)] => (dtype_of(dt)?, latin1(s)?),
                [dt, v] if dtype_of(dt)?.kind == Kind::Object => return Ok(v.clone()),
                _ => return Err("unexpected arguments of a numpy scalar".into()),
            };
            return decode(&dtype, vec![], &data, false).map(Value::Array);
        }
        (m, "_frombuffer") if is_numpy(m, "numeric") => {
            let [buf, dt, shape, order] = args.as_slice() else {
                return Err("expected (buffer, dtype, shape, order)".into());
            };
            let Value::Bytes(buf) = buf else { return Err(format!("buffer is a {}", buf.kind())) };
            let fortran = matches!(order.as_str(), Some("F"));
            return decode(&dtype_of(dt)?, shape_of(shape)?, buf, fortran).map(Value::Array);
        }
        _ => {}
    }
    Ok(Value::Object { module: module.to_string(), name: name.to_string(), args, state })
}

fn latin1(s: &str) -> std::result::Result<Vec<u8>, String> {
    s.chars().map(|c| u8::try_from(c as u32).map_err(|_| "array data string is not latin1".to_string())).collect()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Bool,
    Int,
    UInt,
    Float,
    Unicode,
    Object,
}

#[derive(Clone, Copy, Debug)]
struct Dtype {
    kind: Kind,
    /// Bytes per element (4 per character for unicode).
    size: usize,
    big_endian: bool,
}

/// A `numpy.dtype(name, align, copy)` object with its `BUILD` state `(version, order, …, elsize, …)`.
fn dtype_of(v: &Value) -> std::result::Result<Dtype, String> {
    let Value::Object { module, name, args, state } = v else { return Err(format!("dtype is a {}", v.kind())) };
    if !(module == "numpy" && name == "dtype") {
        return Err(format!("dtype is an object {module}.{name}"));
    }
    let spec = args.first().and_then(Value::as_str).ok_or("dtype without a name")?;
    let mut order = None;
    let mut spec = spec;
    if let Some(c) = spec.chars().next()
        && matches!(c, '<' | '>' | '|' | '=')
    {
        order = Some(c);
        spec = &spec[1..];
    }
    let st = state.as_deref().and_then(Value::as_seq);
    if let Some(st) = st {
        if let Some(o) = st.get(1).and_then(Value::as_str).and_then(|s| s.chars().next()) {
            order = Some(o);
        }
        if st.get(3).is_some_and(|n| !matches!(n, Value::None)) || st.get(2).is_some_and(|n| !matches!(n, Value::None)) {
            return Err("structured or sub-array dtypes are not supported".into());
        }
    }
    let mut chars = spec.chars();
    let k = chars.next().ok_or("empty dtype name")?;
    let digits = chars.as_str();
    let n: usize = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| format!("dtype {spec:?} unsupported"))? };
    let (kind, size) = match k {
        'b' if n == 1 => (Kind::Bool, 1),
        '?' => (Kind::Bool, 1),
        'i' if matches!(n, 1 | 2 | 4 | 8) => (Kind::Int, n),
        'u' if matches!(n, 1 | 2 | 4 | 8) => (Kind::UInt, n),
        'f' if matches!(n, 4 | 8) => (Kind::Float, n),
        'O' => (Kind::Object, 8),
        'U' => {
            let elsize = st.and_then(|s| s.get(5)).and_then(Value::as_f64).filter(|&e| e > 0.0).map(|e| e as usize);
            (Kind::Unicode, elsize.unwrap_or(n.saturating_mul(4)))
        }
        _ => return Err(format!("dtype {spec:?} is not supported")),
    };
    if kind == Kind::Unicode && size % 4 != 0 {
        return Err(format!("unicode dtype with element size {size}"));
    }
    Ok(Dtype { kind, size, big_endian: order == Some('>') })
}

fn shape_of(v: &Value) -> std::result::Result<Vec<usize>, String> {
    let items = v.as_seq().ok_or_else(|| format!("shape is a {}", v.kind()))?;
    items
        .iter()
        .map(|x| match x {
            Value::Int(i) if *i >= 0 => Ok(*i as usize),
            _ => Err(format!("bad shape entry ({})", x.kind())),
        })
        .collect()
}

/// `_reconstruct` state: `(version, shape, dtype, is_fortran, data)` (or without the version).
fn reconstruct(state: &Value) -> std::result::Result<NdArray, String> {
    let s = state.as_seq().ok_or("array state is not a tuple")?;
    let s = match s.len() {
        5 => &s[1..],
        4 => s,
        n => return Err(format!("array state has {n} items")),
    };
    let shape = shape_of(&s[0])?;
    let dtype = dtype_of(&s[1])?;
    let fortran = match &s[2] {
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        x => return Err(format!("is_fortran is a {}", x.kind())),
    };
    match (&s[3], dtype.kind) {
        (Value::List(items), Kind::Object) => {
            let count = count_of(&shape)?;
            if items.len() != count {
                return Err(format!("object array of shape {shape:?} holds {} items", items.len()));
            }
            let items = if fortran { fortran_to_c(items.clone(), &shape) } else { items.clone() };
            Ok(NdArray { shape, data: ArrayData::Object(items) })
        }
        (Value::Bytes(b), _) => decode(&dtype, shape, b, fortran),
        (Value::Str(st), _) => decode(&dtype, shape, &latin1(st)?, fortran),
        (x, _) => Err(format!("array data is a {}", x.kind())),
    }
}

fn count_of(shape: &[usize]) -> std::result::Result<usize, String> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| format!("shape {shape:?} overflows"))
}

fn decode(dt: &Dtype, shape: Vec<usize>, b: &[u8], fortran: bool) -> std::result::Result<NdArray, String> {
    let count = count_of(&shape)?;
    if dt.kind == Kind::Object {
        return Err("object arrays cannot be read from a byte buffer".into());
    }
    let need = count.checked_mul(dt.size).ok_or("array size overflows")?;
    if b.len() != need {
        return Err(format!("array of shape {shape:?} needs {need} bytes of data, found {}", b.len()));
    }
    let be = dt.big_endian;
    macro_rules! nums {
        ($t:ty, $n:expr) => {
            b.chunks_exact($n)
                .map(|c| {
                    let a: [u8; $n] = c.try_into().expect("exact chunk");
                    if be { <$t>::from_be_bytes(a) } else { <$t>::from_le_bytes(a) }
                })
                .collect::<Vec<$t>>()
        };
    }
    let data = match (dt.kind, dt.size) {
        (Kind::Bool, _) => ArrayData::Bool(b.iter().map(|&x| x != 0).collect()),
        (Kind::UInt, 1) => ArrayData::U8(b.to_vec()),
        (Kind::Int, 1) => ArrayData::I8(b.iter().map(|&x| x as i8).collect()),
        (Kind::Int, 2) => ArrayData::I16(nums!(i16, 2)),
        (Kind::Int, 4) => ArrayData::I32(nums!(i32, 4)),
        (Kind::Int, 8) => ArrayData::I64(nums!(i64, 8)),
        (Kind::UInt, 2) => ArrayData::U16(nums!(u16, 2)),
        (Kind::UInt, 4) => ArrayData::U32(nums!(u32, 4)),
        (Kind::UInt, 8) => ArrayData::U64(nums!(u64, 8)),
        (Kind::Float, 4) => ArrayData::F32(nums!(f32, 4)),
        (Kind::Float, 8) => ArrayData::F64(nums!(f64, 8)),
        (Kind::Unicode, size) => {
            let mut out = Vec::with_capacity(count);
            if size > 0 {
                for c in b.chunks_exact(size) {
                    let mut s = String::new();
                    for u in c.chunks_exact(4) {
                        let a: [u8; 4] = u.try_into().expect("4 bytes");
                        let cp = if be { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) };
                        s.push(char::from_u32(cp).ok_or_else(|| format!("invalid code point {cp:#x} in a unicode array"))?);
                    }
                    out.push(s.trim_end_matches('\0').to_string());
                }
            } else if count <= b.len().max(1 << 16) {
                out.resize(count, String::new());
            } else {
                return Err(format!("zero-width unicode array of {count} elements"));
            }
            ArrayData::Str(out)
        }
        (k, s) => return Err(format!("dtype {k:?} of {s} bytes is not supported")),
    };
    let data = if fortran && shape.len() > 1 {
        match data {
            ArrayData::Bool(v) => ArrayData::Bool(fortran_to_c(v, &shape)),
            ArrayData::U8(v) => ArrayData::U8(fortran_to_c(v, &shape)),
            ArrayData::I8(v) => ArrayData::I8(fortran_to_c(v, &shape)),
            ArrayData::I16(v) => ArrayData::I16(fortran_to_c(v, &shape)),
            ArrayData::I32(v) => ArrayData::I32(fortran_to_c(v, &shape)),
            ArrayData::I64(v) => ArrayData::I64(fortran_to_c(v, &shape)),
            ArrayData::U16(v) => ArrayData::U16(fortran_to_c(v, &shape)),
            ArrayData::U32(v) => ArrayData::U32(fortran_to_c(v, &shape)),
            ArrayData::U64(v) => ArrayData::U64(fortran_to_c(v, &shape)),
            ArrayData::F32(v) => ArrayData::F32(fortran_to_c(v, &shape)),
            ArrayData::F64(v) => ArrayData::F64(fortran_to_c(v, &shape)),
            ArrayData::Str(v) => ArrayData::Str(fortran_to_c(v, &shape)),
            ArrayData::Object(v) => ArrayData::Object(fortran_to_c(v, &shape)),
        }
    } else {
        data
    };
    Ok(NdArray { shape, data })
}

/// Reorder column-major elements to row-major.
fn fortran_to_c<T: Clone>(v: Vec<T>, shape: &[usize]) -> Vec<T> {
    if shape.len() < 2 || v.is_empty() {
        return v;
    }
    // Fortran strides (in elements): 1, d0, d0*d1, …
    let mut fstride = vec![1usize; shape.len()];
    for k in 1..shape.len() {
        fstride[k] = fstride[k - 1] * shape[k - 1];
    }
    let mut idx = vec![0usize; shape.len()];
    let mut out = Vec::with_capacity(v.len());
    for _ in 0..v.len() {
        let off: usize = idx.iter().zip(&fstride).map(|(i, s)| i * s).sum();
        out.push(v[off].clone());
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn fixture(name: &str) -> Vec<u8> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aligned").join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn hand_written_protocol_0_and_2() {
        // protocol 0: {'a': [1, 2.5, None], 'b': u'h\u00e9'}
        let p0 = b"(dp0\nVa\np1\n(lp2\nI1\naF2.5\naNasVb\np3\nVh\\u00e9\np4\ns.";
        let v = parse(p0).unwrap();
        assert_eq!(v.get("a"), Some(&Value::List(vec![Value::Int(1), Value::Float(2.5), Value::None])));
        assert_eq!(v.get("b").and_then(Value::as_str), Some("hé"));
        // LONG1 negative and big
        let v = parse(b"\x80\x02\x8a\x02\x00\xff\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01\x86.").unwrap();
        assert_eq!(v, Value::Tuple(vec![Value::Int(-256), Value::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0, 1])]));
    }

    #[test]
    fn shared_list_is_mutated_in_place_and_bombs_are_refused() {
        // l = []; (l, l) with l appended after memoising
        let v = parse(b"\x80\x04]\x94(K\x01K\x02eh\x00\x86.").unwrap();
        let l = Value::List(vec![Value::Int(1), Value::Int(2)]);
        assert_eq!(v, Value::Tuple(vec![l.clone(), l]));
        // self-referencing list: depth limit, not a stack overflow
        let e = parse(b"\x80\x04]\x94h\x00a.").unwrap_err();
        assert!(e.contains("deeper"), "{e}");
        // exponential sharing: t = (t, t) 60 times
        let mut b = b"\x80\x04K\x00\x94".to_vec();
        for i in 0..60u8 {
            b.extend([b'h', i, b'h', i, 0x86, 0x94]);
        }
        b.push(b'.');
        let e = parse(&b).unwrap_err();
        assert!(e.contains("larger than the input"), "{e}");
        // a length field beyond the input
        let e = parse(b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7f").unwrap_err();
        assert!(e.contains("at byte 2") && e.contains("past the end"), "{e}");
    }

    #[test]
    fn fuzzed_fixtures_never_panic() {
        let mut rng = StdRng::seed_from_u64(7);
        let names = ["mag_p2.pkl", "mag_p4.pkl", "mag_p5.pkl", "mmsa.pkl", "dtypes.pkl"];
        let files: Vec<Vec<u8>> = names.iter().map(|n| fixture(n)).collect();
        let mut errors = 0;
        for case in 0..4000 {
            let mut b = files[case % files.len()].clone();
            match rng.random_range(0..4) {
                0 => b.truncate(rng.random_range(0..b.len())),
                1 => {
                    for _ in 0..rng.random_range(1..8) {
                        let i = rng.random_range(0..b.len());
                        b[i] = rng.random();
                    }
                }
                2 => {
                    let i = rng.random_range(0..b.len());
                    let j = rng.random_range(i..b.len());
                    b.drain(i..j);
                }
                _ => {
                    let i = rng.random_range(0..b.len());
                    let n = rng.random_range(1..16);
                    let junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                    b.splice(i..i, junk);
                }
            }
            if parse(&b).is_err() {
                errors += 1;
            }
        }
        assert!(errors > 1000, "mutations should usually break the pickle ({errors} errors)");
    }
}
