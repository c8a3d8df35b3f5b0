/* bpe.c — the BPE merge loop shared by tokenizer.json and tokenizer.model: symbols form a linked
 * list, candidate pairs sit in a binary heap (best first, leftmost among equals) and a popped
 * pair is skipped when either side changed since it was pushed. O(n log n) in the word length. */
#include <stdlib.h>

#include "tokenizer-impl.h"

static bool pair_before(const tok_pair *a, const tok_pair *b)
{
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static bool heap_push(tok_scratch *s, tok_pair p)
{
    if (s->n_heap == s->cap_heap) {
        size_t cap = s->cap_heap ? s->cap_heap * 2 : 64;
        tok_pair *h = realloc(s->heap, cap * sizeof *h);
        if (!h) {
            return false;
        }
        s->heap = h;
        s->cap_heap = cap;
    }
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &s->heap[parent])) {
            break;
        }
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = p;
    return true;
}

static tok_pair heap_pop(tok_scratch *s)
{
    tok_pair top = s->heap[0];
    tok_pair last = s->heap[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && pair_before(&s->heap[c + 1], &s->heap[c])) {
            c++;
        }
        if (!pair_before(&s->heap[c], &last)) {
            break;
        }
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n > 0) {
        s->heap[i] = last;
    }
    return top;
}

static bool consider_pair(const setok_text_tokenizer *tok, const char *text, tok_scratch *s,
                          int32_t left, int32_t right, bool by_score)
{
    if (left < 0 || right < 0) {
        return true;
    }
    const tok_sym *a = &s->syms[left], *b = &s->syms[right];
    tok_pair p = {.left = left, .right = right, .left_len = a->end - a->start,
                  .right_len = b->end - b->start};
    if (by_score) {
        if (a->frozen || b->frozen) {
            return true;
        }
        int32_t id = tok_vocab_find(tok, text + a->start, b->end - a->start);
        if (id < 0 || (tok->pieces[id].type != TOK_NORMAL && tok->pieces[id].type != TOK_USER)) {
            return true;
        }
        p.key = -(double)tok->pieces[id].score;
        p.result = id;
    } else {
        int32_t rank;
        if (!tok_merge_find(tok, a->id, b->id, &rank, &p.result)) {
            return true;
        }
        p.key = rank;
    }
    return heap_push(s, p);
}

bool tok_bpe_merge(const setok_text_tokenizer *tok, const char *text, tok_scratch *s, bool by_score)
{
    s->n_heap = 0;
    for (size_t i = 0; i + 1 < s->n_syms; i++) {
        if (!consider_pair(tok, text, s, (int32_t)i, (int32_t)i + 1, by_score)) {
            return false;
        }
    }
    while (s->n_heap > 0) {
        tok_pair p = heap_pop(s);
        tok_sym *a = &s->syms[p.left];
        if (a->end == a->start || a->next != p.right || a->end - a->start != p.left_len) {
            continue;
        }
        tok_sym *b = &s->syms[p.right];
        if (b->end - b->start != p.right_len) {
            continue;
        }
        a->id = p.result;
        a->end = b->end;
        a->next = b->next;
        if (b->next >= 0) {
            s->syms[b->next].prev = p.left;
        }
        b->end = b->start; /* dead */
        if (!consider_pair(tok, text, s, a->prev, p.left, by_score) ||
            !consider_pair(tok, text, s, p.left, a->next, by_score)) {
            return false;
        }
    }
    return true;
}
