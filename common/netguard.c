#include "common/netguard.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

bool netguard_is_private(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 || (a >> 16) == 0xa9fe || (a >> 20) == 0xac1 ||
               (a >> 16) == 0xc0a8 || (a >> 22) == (100u << 2 | 1) || (a >> 28) == 0xe || a == 0xffffffff;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            struct sockaddr_in v4 = {.sin_family = AF_INET};
            memcpy(&v4.sin_addr, a->s6_addr + 12, 4);
            return netguard_is_private((const struct sockaddr *)&v4);
        }
        return IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_SITELOCAL(a) ||
               IN6_IS_ADDR_MULTICAST(a) || (a->s6_addr[0] & 0xfe) == 0xfc;
    }
    return true;
}

/* The host of "scheme://[userinfo@]host[:port][/...]", brackets of an IPv6 literal removed. */
static int s_host(const char *url, char *host, size_t size)
{
    const char *start = strstr(url, "://");
    if (start == NULL)
        return -1;
    start += 3;
    size_t authority = strcspn(start, "/?#");
    const char *at = memchr(start, '@', authority);
    if (at != NULL) {
        authority -= (size_t)(at + 1 - start);
        start = at + 1;
    }
    size_t len;
    if (*start == '[') {
        const char *close = memchr(start, ']', authority);
        if (close == NULL)
            return -1;
        start++;
        len = (size_t)(close - start);
    } else {
        const char *colon = memchr(start, ':', authority);
        len = colon ? (size_t)(colon - start) : authority;
    }
    if (len == 0 || len >= size)
        return -1;
    memcpy(host, start, len);
    host[len] = '\0';
    return 0;
}

int netguard_check_url(const char *url, char *why, size_t size)
{
    char host[256];
    if (s_host(url, host, sizeof(host)) != 0) {
        snprintf(why, size, "has no host we can resolve");
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *found = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &found);
    if (rc != 0) {
        snprintf(why, size, "names a host that does not resolve (%s)", gai_strerror(rc));
        return -1;
    }
    int verdict = 0;
    for (struct addrinfo *a = found; a && verdict == 0; a = a->ai_next)
        if (netguard_is_private(a->ai_addr)) {
            snprintf(why, size, "resolves to a loopback or private address, which is refused");
            verdict = -1;
        }
    freeaddrinfo(found);
    return verdict;
}

static curl_socket_t s_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *address)
{
    const bool *allow_private = arg;
    if (!*allow_private && netguard_is_private(&address->addr))
        return CURL_SOCKET_BAD;
    return socket(address->family, address->socktype, address->protocol);
}

void netguard_curl(CURL *curl, const char *url, long timeout_ms, const bool *allow_private)
{
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_PROXY, "");
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "impactd/" IMPACT_VERSION);
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, s_open_socket);
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, (void *)allow_private);
}

const char *netguard_curl_error(CURLcode rc, bool allow_private)
{
    if (rc == CURLE_COULDNT_CONNECT && !allow_private)
        return "could not connect (private addresses are refused)";
    return curl_easy_strerror(rc);
}
