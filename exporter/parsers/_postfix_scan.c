/*
 * exporter.parsers._postfix_scan: the Postfix line parser (exporter/parsers/postfix.py, parse()) as a
 * compiled scanner over a whole block of lines, for the hot path. Optional: without a C compiler the
 * package falls back to postfix.count_block()'s regular expression, which counts the same.
 *
 * scan(block: bytes) -> (ignored, unparsed, found, slow)
 *   block   complete lines, each ending with "\n" (the caller checks the final newline)
 *   ignored lines parse() would give () for
 *   unparsed lines parse() would give None for
 *   found   {key: number of lines}, one key per distinct event (encoding below)
 *   slow    lines this scanner does not decide, without their "\n": lines with a byte above 127 or a
 *           "\r", a quoted local part in an address, cleanup/header/body rejects. The caller decodes
 *           them and hands them to parse().
 *
 * Keys (fields never hold a NUL byte: they come from digit, dot and letter runs):
 *   b"S" status "\0" code "\0" dsn    a recipient result (status sent, deferred, SOFTBOUNCE, bounced)
 *   b"R" code "\0" enhanced           a reject
 *   b"X"                              "expired, returned to sender"
 * An absent code or enhanced code is empty.
 *
 * Every decision below mirrors one regular expression or string test of postfix.py, for ASCII text
 * (where str \d is [0-9], \w is [A-Za-z0-9_] and \s is [ \t\n\r\v\f\x1c-\x1f]); the comments quote it.
 * Each rule was worked out against the regex's backtracking: where a comment says "unique", no other
 * split of the text can make the pattern match. tests/test_counting.py compares this scanner with
 * parse() line by line on table lines, generated logs and hypothesis-mutated lines, and the fuzz test
 * runs it on arbitrary bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

typedef const unsigned char *ptr;

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline int is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
static inline int is_lower(unsigned char c) { return c >= 'a' && c <= 'z'; }
static inline int is_word(unsigned char c) { return is_digit(c) || is_upper(c) || is_lower(c) || c == '_'; }
static inline int is_prog(unsigned char c) { return is_word(c) || c == '.' || c == '-'; } /* [\w.-] */
static inline int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

static inline int starts(ptr p, ptr e, const char *lit, size_t n) {
    return (size_t)(e - p) >= n && memcmp(p, lit, n) == 0;
}

/* First occurrence of lit in [p, e), or NULL. */
static ptr find(ptr p, ptr e, const char *lit, size_t n) {
    while ((size_t)(e - p) >= n) {
        ptr c = memchr(p, lit[0], (size_t)(e - p) - n + 1);
        if (c == NULL) return NULL;
        if (memcmp(c + 1, lit + 1, n - 1) == 0) return c;
        p = c + 1;
    }
    return NULL;
}

static inline ptr digits(ptr p, ptr e) {
    while (p < e && is_digit(*p)) p++;
    return p;
}

/*
 * _HEADER: _TIMESTAMP " " \S+ " " (?P<prog>[\w.-]+(?:/[\w.-]+)+|postfix[\w.-]*) (?:\[\d+\])? ": "
 * Returns the end of the match (just past ": ") or NULL; sets the program's span.
 */
static ptr header(ptr p, ptr e, ptr *prog, ptr *prog_end) {
    /* "Dec  4 15:36:10": [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d */
    if (e - p >= 15 && is_upper(p[0]) && is_lower(p[1]) && is_lower(p[2]) && p[3] == ' ' &&
        (p[4] == ' ' || is_digit(p[4])) && is_digit(p[5]) && p[6] == ' ' && is_digit(p[7]) &&
        is_digit(p[8]) && p[9] == ':' && is_digit(p[10]) && is_digit(p[11]) && p[12] == ':' &&
        is_digit(p[13]) && is_digit(p[14])) {
        p += 15;
    } else if (e - p >= 19 && is_digit(p[0]) && is_digit(p[1]) && is_digit(p[2]) && is_digit(p[3]) &&
               p[4] == '-' && is_digit(p[5]) && is_digit(p[6]) && p[7] == '-' && is_digit(p[8]) &&
               is_digit(p[9]) && p[10] == 'T' && is_digit(p[11]) && is_digit(p[12]) && p[13] == ':' &&
               is_digit(p[14]) && is_digit(p[15]) && p[16] == ':' && is_digit(p[17]) && is_digit(p[18])) {
        /* \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)? and then a space: each optional
           part either takes all it can or nothing, or no split at all is followed by the space. */
        p += 19;
        if (e - p >= 2 && p[0] == '.' && is_digit(p[1])) p = digits(p + 1, e);
        if (p < e && p[0] == 'Z') {
            p += 1;
        } else if (p < e && (p[0] == '+' || p[0] == '-')) {
            if (e - p >= 5 && is_digit(p[1]) && is_digit(p[2]) && is_digit(p[3]) && is_digit(p[4]))
                p += 5;
            else if (e - p >= 6 && is_digit(p[1]) && is_digit(p[2]) && p[3] == ':' && is_digit(p[4]) &&
                     is_digit(p[5]))
                p += 6;
        }
    } else {
        return NULL;
    }
    /* " \S+ ": the host runs to the first whitespace, which must be a space (unique). */
    if (p >= e || *p != ' ') return NULL;
    ptr h = ++p;
    while (p < e && !is_space(*p)) p++;
    if (p == h || p >= e || *p != ' ') return NULL;
    /* The program: what follows must be "[" or ":", which neither alternative can hold, so only the
       whole run of [\w.-] and "/" can match. Alternative 1 is W+(/W+)+; alternative 2 is "postfix"W*. */
    ptr s = ++p;
    int slashes = 0, empty_part = 0;
    ptr part = s;
    while (p < e && (is_prog(*p) || *p == '/')) {
        if (*p == '/') {
            slashes++;
            if (p == part) empty_part = 1;
            part = p + 1;
        }
        p++;
    }
    if (p == s) return NULL;
    if (p == part) empty_part = 1; /* ends with "/" (or is empty) */
    int alt1 = slashes > 0 && !empty_part;
    int alt2 = slashes == 0 && starts(s, p, "postfix", 7);
    if (!alt1 && !alt2) return NULL;
    *prog = s;
    *prog_end = p;
    /* (?:\[\d+\])?": " */
    if (p < e && *p == '[') {
        ptr d = digits(p + 1, e);
        if (d == p + 1 || d >= e || *d != ']') return NULL;
        p = d + 1;
    }
    if (e - p >= 2 && p[0] == ':' && p[1] == ' ') return p + 2;
    return NULL;
}

/* (\d{3})(?:[ -]|$) at c */
static inline int code_at(ptr c, ptr e) {
    return e - c >= 3 && is_digit(c[0]) && is_digit(c[1]) && is_digit(c[2]) &&
           (e - c == 3 || c[3] == ' ' || c[3] == '-');
}

/* _REPLY.search(text): (?:^|(?: said| refused to talk to me): )(\d{3})(?:[ -]|$), leftmost. */
static ptr reply_code(ptr t, ptr e) {
    if (code_at(t, e)) return t;
    for (ptr p = memchr(t, ' ', (size_t)(e - t)); p != NULL; p = memchr(p + 1, ' ', (size_t)(e - p - 1))) {
        if (starts(p, e, " said: ", 7) && code_at(p + 7, e)) return p + 7;
        if (starts(p, e, " refused to talk to me: ", 24) && code_at(p + 24, e)) return p + 24;
    }
    return NULL;
}

/* _after_address(text, i - 1) for an address whose "<" is just before i: index past its ">".
   Returns NULL for a quoted local part (the line parser's job). */
static ptr after_address(ptr i, ptr e) {
    if (i < e && *i == '"') return NULL;
    ptr end = memchr(i, '>', (size_t)(e - i));
    return end == NULL ? e : end + 1;
}

enum { IGNORED, OUTCOME, SLOW };

typedef struct {
    char buf[64];
    size_t len;
} key_t_;

static int key_add(key_t_ *k, ptr p, ptr e) {
    size_t n = (size_t)(e - p);
    if (k->len + n > sizeof k->buf) return 0;
    memcpy(k->buf + k->len, p, n);
    k->len += n;
    return 1;
}

static int key_byte(key_t_ *k, char c) {
    if (k->len + 1 > sizeof k->buf) return 0;
    k->buf[k->len++] = c;
    return 1;
}

/* _parse_status(rest), rest starting with "to=<". */
static int status_line(ptr rest, ptr e, key_t_ *k) {
    ptr pos = after_address(rest + 4, e);
    if (pos == NULL) return SLOW;
    if (starts(pos, e, ", orig_to=<", 11)) {
        pos = after_address(pos + 11, e);
        if (pos == NULL) return SLOW;
    }
    /* _STATUS.search: , dsn=([0-9.]+), status=([A-Za-z-]+)(?: \((.*))? leftmost; each run is unique. */
    for (ptr p = pos; (p = find(p, e, ", dsn=", 6)) != NULL; p++) {
        ptr d = p + 6, q = d;
        while (q < e && (is_digit(*q) || *q == '.')) q++;
        if (q == d || !starts(q, e, ", status=", 9)) continue;
        ptr w = q + 9, x = w;
        while (x < e && (is_upper(*x) || is_lower(*x) || *x == '-')) x++;
        if (x == w) continue;
        size_t n = (size_t)(x - w);
        /* _STATUS_MAP; "expired", "force-expired", "deliverable" ... give IGNORED */
        if (!((n == 4 && memcmp(w, "sent", 4) == 0) || (n == 8 && memcmp(w, "deferred", 8) == 0) ||
              (n == 10 && memcmp(w, "SOFTBOUNCE", 10) == 0) || (n == 7 && memcmp(w, "bounced", 7) == 0)))
            return IGNORED;
        ptr code = NULL;
        if (e - x > 2 && x[0] == ' ' && x[1] == '(') code = reply_code(x + 2, e); /* `if text:` */
        if (!(key_byte(k, 'S') && key_add(k, w, x) && key_byte(k, 0))) return SLOW;
        if (code != NULL && !key_add(k, code, code + 3)) return SLOW;
        if (!(key_byte(k, 0) && key_add(k, d, q))) return SLOW;
        return OUTCOME;
    }
    return IGNORED;
}

/* _REJECT.match(rest) for a reject that is not cleanup's:
   (?:milter-)?reject: [A-Z][A-Z-]* from [^\s\[]*\[[^\]]*\](?::\d+)?: (?:(\d{3})[ -])?(?:([245]\.\d{1,3}\.\d{1,3})\b)? */
static int reject_line(ptr p, ptr e, key_t_ *k) {
    ptr code = NULL, enh = NULL, enh_end = NULL;
    if (p < e && is_upper(*p)) {
        p++;
        while (p < e && (is_upper(*p) || *p == '-')) p++;
        if (!starts(p, e, " from ", 6)) goto done;
        p += 6;
        while (p < e && !is_space(*p) && *p != '[') p++;
        if (p >= e || *p != '[') goto done;
        ptr close = memchr(p, ']', (size_t)(e - p));
        if (close == NULL) goto done;
        p = close + 1;
        /* (?::\d+)?": ": with digits after ":", they must be followed by ": "; else ": " right here */
        if (e - p >= 2 && p[0] == ':' && is_digit(p[1])) {
            ptr d = digits(p + 1, e);
            if (starts(d, e, ": ", 2))
                p = d + 2;
            else
                goto done; /* ":5678x": neither split is followed by ": " */
        } else if (starts(p, e, ": ", 2)) {
            p += 2;
        } else {
            goto done;
        }
        if (e - p >= 4 && is_digit(p[0]) && is_digit(p[1]) && is_digit(p[2]) && (p[3] == ' ' || p[3] == '-')) {
            code = p;
            p += 4;
        }
        /* [245]\.\d{1,3}\.\d{1,3}\b: each digit run must be 1 to 3 long (a longer one fails whatever
           the split) and the last must not be followed by a word character */
        if (p < e && (*p == '2' || *p == '4' || *p == '5') && p + 1 < e && p[1] == '.') {
            ptr a = p + 2, b = digits(a, e);
            if (b > a && b - a <= 3 && b < e && *b == '.') {
                ptr c = b + 1, f = digits(c, e);
                if (f > c && f - c <= 3 && (f == e || !is_word(*f))) {
                    enh = p;
                    enh_end = f;
                }
            }
        }
    }
done:
    if (!key_byte(k, 'R')) return SLOW;
    if (code != NULL && !key_add(k, code, code + 3)) return SLOW;
    if (!key_byte(k, 0)) return SLOW;
    if (enh != NULL && !key_add(k, enh, enh_end)) return SLOW;
    return OUTCOME;
}

/* parse(line) for one ASCII line without "\r": ignored, an outcome (key filled) or slow. */
static int line_result(ptr s, ptr e, key_t_ *k, int *unparsed) {
    ptr prog, prog_end;
    ptr h = header(s, e, &prog, &prog_end);
    if (h == NULL) {
        *unparsed = 1;
        return IGNORED;
    }
    /* colon = line.find(": ", m.end()); rest = line[colon + 2:] */
    ptr colon = find(h, e, ": ", 2);
    if (colon == NULL) return IGNORED;
    ptr rest = colon + 2;
    if (starts(rest, e, "to=<", 4)) return status_line(rest, e, k);
    int plain = starts(rest, e, "reject: ", 8);
    if (plain || starts(rest, e, "milter-reject: ", 15)) {
        if ((prog_end - prog >= 8 && memcmp(prog_end - 8, "/cleanup", 8) == 0) ||
            starts(rest, e, "reject: header ", 15) || starts(rest, e, "reject: body ", 13))
            return SLOW; /* _CLEANUP_ENH: the line parser's */
        return reject_line(rest + (plain ? 8 : 15), e, k);
    }
    if (starts(rest, e, "from=<", 6) && find(rest, e, "expired, returned to sender", 27) != NULL) {
        key_byte(k, 'X');
        return OUTCOME;
    }
    return IGNORED;
}

static int plain_ascii(ptr p, ptr e) {
    unsigned char acc = 0;
    for (; p < e; p++) acc |= *p;
    return acc < 0x80;
}

static PyObject *scan(PyObject *Py_UNUSED(self), PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    ptr p = view.buf, end = p + view.len;
    Py_ssize_t ignored = 0, unparsed = 0;
    PyObject *found = PyDict_New(), *slow = PyList_New(0), *result = NULL;
    if (found == NULL || slow == NULL) goto fail;
    int clean = plain_ascii(p, end) && memchr(p, '\r', (size_t)(end - p)) == NULL;
    while (p < end) {
        ptr nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL) nl = end; /* a last line without its newline: the caller keeps it back */
        key_t_ k;
        k.len = 0;
        int bad = 0, r;
        if (!clean && (!plain_ascii(p, nl) || memchr(p, '\r', (size_t)(nl - p)) != NULL))
            r = SLOW;
        else
            r = line_result(p, nl, &k, &bad);
        if (r == SLOW) {
            PyObject *line = PyBytes_FromStringAndSize((const char *)p, nl - p);
            if (line == NULL || PyList_Append(slow, line) < 0) {
                Py_XDECREF(line);
                goto fail;
            }
            Py_DECREF(line);
        } else if (r == OUTCOME) {
            PyObject *key = PyBytes_FromStringAndSize(k.buf, (Py_ssize_t)k.len);
            if (key == NULL) goto fail;
            PyObject *old = PyDict_GetItemWithError(found, key);
            long n = 1;
            if (old != NULL) n += PyLong_AsLong(old);
            else if (PyErr_Occurred()) {
                Py_DECREF(key);
                goto fail;
            }
            PyObject *value = PyLong_FromLong(n);
            if (value == NULL || PyDict_SetItem(found, key, value) < 0) {
                Py_DECREF(key);
                Py_XDECREF(value);
                goto fail;
            }
            Py_DECREF(key);
            Py_DECREF(value);
        } else if (bad) {
            unparsed++;
        } else {
            ignored++;
        }
        p = nl + 1;
    }
    result = Py_BuildValue("nnOO", ignored, unparsed, found, slow);
fail:
    Py_XDECREF(found);
    Py_XDECREF(slow);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_O, "scan(block) -> (ignored, unparsed, {key: lines}, [slow lines]); see the source."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_postfix_scan", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__postfix_scan(void) { return PyModule_Create(&module); }
