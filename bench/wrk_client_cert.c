/*
 * wrk cannot present a TLS client certificate; this LD_PRELOAD shim makes it: every SSL_CTX
 * wrk creates loads the certificate chain and key named by WRK_CLIENT_CERT and WRK_CLIENT_KEY.
 * With it, one client (wrk) measures plain HTTP and mTLS alike, so their ratio is fair.
 * bench/throughput.py builds it with: cc -shared -fPIC -o wrk_client_cert.so wrk_client_cert.c -ldl -lssl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <openssl/ssl.h>

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method)
{
    SSL_CTX *(*real)(const SSL_METHOD *) = (SSL_CTX * (*)(const SSL_METHOD *)) dlsym(RTLD_NEXT, "SSL_CTX_new");
    SSL_CTX *ctx = real(method);
    const char *cert = getenv("WRK_CLIENT_CERT"), *key = getenv("WRK_CLIENT_KEY");
    if (ctx != NULL && cert != NULL && key != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1
            || SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
            fprintf(stderr, "wrk_client_cert: cannot load %s / %s\n", cert, key);
            abort();
        }
    }
    return ctx;
}
