/* Hashing, HMAC and one-way key evolution for the audit chain.
 *
 * h_i = SHA-256(P_i), mac_i = HMAC-SHA256(K_e, h_i) and
 * K_{e+1} = SHA-256("talon-audit-evolve-v1" || K_e), as docs/audit-format.md
 * specifies. The HMAC is computed by hand from two SHA-256 states absorbed
 * once per epoch (RFC 2104), so the writer's per-record work is one SHA-256
 * over P_i plus two compressions of 32 bytes. Those states are as secret as
 * the key itself and are freed (OpenSSL clears digest contexts on free)
 * whenever the key changes. */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "audit/audit_internal.h"

#define SHA256_BLOCK 64

int audit_crypto_init(audit_crypto *c)
{
    memset(c, 0, sizeof(*c));
    c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    c->hash = EVP_MD_CTX_new();
    if (c->sha256 == NULL || c->hash == NULL) {
        audit_crypto_free(c);
        return -ENOMEM;
    }
    return 0;
}

void audit_crypto_wipe_key(audit_crypto *c)
{
    /* EVP_MD_CTX_free cleanses the SHA-256 state in the default provider. */
    EVP_MD_CTX_free(c->mac_inner);
    EVP_MD_CTX_free(c->mac_outer);
    EVP_MD_CTX_free(c->mac_work);
    c->mac_inner = c->mac_outer = c->mac_work = NULL;
    c->keyed = false;
}

void audit_crypto_free(audit_crypto *c)
{
    audit_crypto_wipe_key(c);
    EVP_MD_CTX_free(c->hash);
    EVP_MD_free(c->sha256);
    memset(c, 0, sizeof(*c));
}

static int absorb_pad(audit_crypto *c, EVP_MD_CTX *ctx, const unsigned char key[AUDIT_KEY_LEN],
                      unsigned char pad)
{
    unsigned char block[SHA256_BLOCK];
    int ok;

    memset(block, pad, sizeof(block));
    for (size_t i = 0; i < AUDIT_KEY_LEN; i++)
        block[i] ^= key[i];
    ok = EVP_DigestInit_ex2(ctx, c->sha256, NULL) && EVP_DigestUpdate(ctx, block, sizeof(block));
    OPENSSL_cleanse(block, sizeof(block));
    return ok ? 0 : -EIO;
}

int audit_crypto_set_key(audit_crypto *c, const unsigned char key[AUDIT_KEY_LEN])
{
    audit_crypto_wipe_key(c);
    c->mac_inner = EVP_MD_CTX_new();
    c->mac_outer = EVP_MD_CTX_new();
    c->mac_work = EVP_MD_CTX_new();
    if (c->mac_inner == NULL || c->mac_outer == NULL || c->mac_work == NULL)
        goto err;
    if (absorb_pad(c, c->mac_inner, key, 0x36) < 0 || absorb_pad(c, c->mac_outer, key, 0x5c) < 0)
        goto err;
    c->keyed = true;
    return 0;

err:
    audit_crypto_wipe_key(c);
    return -ENOMEM;
}

int audit_crypto_hash(audit_crypto *c, const void *p, size_t n, unsigned char out[AUDIT_HASH_LEN])
{
    unsigned int outlen = 0;

    if (!EVP_DigestInit_ex2(c->hash, c->sha256, NULL) || !EVP_DigestUpdate(c->hash, p, n) ||
        !EVP_DigestFinal_ex(c->hash, out, &outlen))
        return -EIO;
    return 0;
}

int audit_crypto_mac(audit_crypto *c, const unsigned char h[AUDIT_HASH_LEN],
                     unsigned char out[AUDIT_HASH_LEN])
{
    unsigned char inner[AUDIT_HASH_LEN];
    unsigned int outlen = 0;
    int ok;

    if (!c->keyed)
        return -EINVAL;
    ok = EVP_MD_CTX_copy_ex(c->mac_work, c->mac_inner) &&
         EVP_DigestUpdate(c->mac_work, h, AUDIT_HASH_LEN) &&
         EVP_DigestFinal_ex(c->mac_work, inner, &outlen) &&
         EVP_MD_CTX_copy_ex(c->mac_work, c->mac_outer) &&
         EVP_DigestUpdate(c->mac_work, inner, sizeof(inner)) &&
         EVP_DigestFinal_ex(c->mac_work, out, &outlen);
    OPENSSL_cleanse(inner, sizeof(inner));
    return ok ? 0 : -EIO;
}

int audit_key_evolve(unsigned char key[AUDIT_KEY_LEN])
{
    unsigned char next[AUDIT_HASH_LEN];
    unsigned int outlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok;

    if (ctx == NULL)
        return -ENOMEM;
    ok = EVP_DigestInit_ex2(ctx, EVP_sha256(), NULL) &&
         EVP_DigestUpdate(ctx, AUDIT_EVOLVE_LABEL, strlen(AUDIT_EVOLVE_LABEL)) &&
         EVP_DigestUpdate(ctx, key, AUDIT_KEY_LEN) && EVP_DigestFinal_ex(ctx, next, &outlen);
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        OPENSSL_cleanse(next, sizeof(next));
        return -EIO;
    }
    memcpy(key, next, AUDIT_KEY_LEN);
    OPENSSL_cleanse(next, sizeof(next));
    return 0;
}

void audit_hex(char *out, const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0x0f];
    }
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* the format uses lowercase hex only */
}

int audit_unhex(unsigned char *out, const char *hex, size_t nbytes)
{
    for (size_t i = 0; i < nbytes; i++) {
        int hi = hex_value(hex[2 * i]);
        int lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}
