/* A small PKCS#11 load generator for `npm run bench`: the SoftHSM2 anchor of the SDK bench and
 * the PKCS#11 bridge bench (bench/softhsm_anchor.ts compiles it with the system's gcc into a
 * temporary directory).
 *
 *   p11_sign <module.so> <pin> <ec|rsa|random> <threads> <seconds>
 *
 * Loads the module (dlopen), C_Initialize (OS locking), logs in as CKU_USER on the first slot with
 * a token, generates a session key pair (EC P-256 with CKM_EC_KEY_PAIR_GEN, or RSA-2048 with
 * CKM_RSA_PKCS_KEY_PAIR_GEN), then prints {"event":"ready"} and waits for a line on stdin, so that
 * the parent can sample the server's CPU time after key generation. Then <threads> threads, each
 * with its own session, loop C_SignInit + C_Sign for <seconds>:
 *   ec:  CKM_ECDSA over a 32-byte digest (the hash is not part of the measured work);
 *   rsa: CKM_SHA256_RSA_PKCS over 64 bytes of data;
 *   random: no key; C_GenerateRandom of 32 bytes (one round trip per call).
 * Prints {"ops":N,"seconds":S,"cpu":C,"threads":T} where cpu is this process's user+system CPU
 * seconds (getrusage) over the measured window only, then waits for a second line (or end of input)
 * before closing the sessions. Exit status 1 and a message on stderr on any
 * failure, with the CK_RV in hex. */

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR p11;
static CK_SLOT_ID slot;
static CK_OBJECT_HANDLE private_key;
static CK_MECHANISM mechanism;
static CK_BYTE message[64];
static CK_ULONG message_bytes;
static int random_only;
static double deadline;

static void die(const char *what, CK_RV rv) {
  fprintf(stderr, "p11_sign: %s failed: CK_RV 0x%lx\n", what, (unsigned long)rv);
  exit(1);
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void load_module(const char *path) {
  void *lib = dlopen(path, RTLD_NOW);
  if (lib == NULL) {
    fprintf(stderr, "p11_sign: cannot load %s: %s\n", path, dlerror());
    exit(1);
  }
  CK_C_GetFunctionList get_list = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
  if (get_list == NULL) die("dlsym C_GetFunctionList", 0);
  CK_RV rv = get_list(&p11);
  if (rv != CKR_OK) die("C_GetFunctionList", rv);
  CK_C_INITIALIZE_ARGS args;
  memset(&args, 0, sizeof args);
  args.flags = CKF_OS_LOCKING_OK; /* the threads below call the module concurrently */
  rv = p11->C_Initialize(&args);
  if (rv != CKR_OK) die("C_Initialize", rv);
  CK_SLOT_ID slots[16];
  CK_ULONG count = 16;
  rv = p11->C_GetSlotList(CK_TRUE, slots, &count);
  if (rv != CKR_OK) die("C_GetSlotList", rv);
  if (count == 0) die("C_GetSlotList (no token)", 0);
  slot = slots[0];
}

/* Session (CKA_TOKEN false) key pair: nothing is left on the token. */
static void generate_key(CK_SESSION_HANDLE session, int ec) {
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_BYTE p256_oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
  CK_ULONG bits = 2048;
  CK_BYTE exponent[] = {0x01, 0x00, 0x01};
  CK_ATTRIBUTE ec_public[] = {{CKA_TOKEN, &no, sizeof no}, {CKA_VERIFY, &yes, sizeof yes}, {CKA_EC_PARAMS, p256_oid, sizeof p256_oid}};
  CK_ATTRIBUTE rsa_public[] = {{CKA_TOKEN, &no, sizeof no}, {CKA_VERIFY, &yes, sizeof yes}, {CKA_MODULUS_BITS, &bits, sizeof bits}, {CKA_PUBLIC_EXPONENT, exponent, sizeof exponent}};
  CK_ATTRIBUTE private_template[] = {{CKA_TOKEN, &no, sizeof no}, {CKA_PRIVATE, &yes, sizeof yes}, {CKA_SENSITIVE, &yes, sizeof yes}, {CKA_SIGN, &yes, sizeof yes}};
  CK_MECHANISM gen = {ec ? CKM_EC_KEY_PAIR_GEN : CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
  CK_OBJECT_HANDLE public_key;
  CK_RV rv = p11->C_GenerateKeyPair(session, &gen, ec ? ec_public : rsa_public, ec ? 3 : 4, private_template, 4, &public_key, &private_key);
  if (rv != CKR_OK) die("C_GenerateKeyPair", rv);
}

static void *sign_loop(void *counter) {
  CK_SESSION_HANDLE session;
  CK_RV rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &session);
  if (rv != CKR_OK) die("C_OpenSession", rv);
  CK_BYTE signature[512];
  unsigned long ops = 0;
  while (random_only && now_seconds() < deadline) {
    rv = p11->C_GenerateRandom(session, signature, 32);
    if (rv != CKR_OK) die("C_GenerateRandom", rv);
    ops++;
  }
  while (!random_only && now_seconds() < deadline) {
    rv = p11->C_SignInit(session, &mechanism, private_key);
    if (rv != CKR_OK) die("C_SignInit", rv);
    CK_ULONG signature_bytes = sizeof signature;
    rv = p11->C_Sign(session, message, message_bytes, signature, &signature_bytes);
    if (rv != CKR_OK) die("C_Sign", rv);
    ops++;
  }
  p11->C_CloseSession(session);
  *(unsigned long *)counter = ops;
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: p11_sign <module.so> <pin> <ec|rsa|random> <threads> <seconds>\n");
    return 2;
  }
  int ec = strcmp(argv[3], "ec") == 0;
  random_only = strcmp(argv[3], "random") == 0;
  if (!ec && !random_only && strcmp(argv[3], "rsa") != 0) {
    fprintf(stderr, "p11_sign: the kind must be ec, rsa or random\n");
    return 2;
  }
  int threads = atoi(argv[4]);
  double seconds = atof(argv[5]);
  if (threads < 1 || threads > 64 || seconds <= 0) {
    fprintf(stderr, "p11_sign: threads must be 1..64 and seconds > 0\n");
    return 2;
  }
  load_module(argv[1]);
  CK_SESSION_HANDLE setup;
  CK_RV rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &setup);
  if (rv != CKR_OK) die("C_OpenSession", rv);
  rv = p11->C_Login(setup, CKU_USER, (CK_UTF8CHAR_PTR)argv[2], strlen(argv[2]));
  if (rv != CKR_OK) die("C_Login", rv);
  if (!random_only) generate_key(setup, ec);
  memset(message, 0xab, sizeof message);
  mechanism.mechanism = ec ? CKM_ECDSA : CKM_SHA256_RSA_PKCS;
  message_bytes = ec ? 32 : 64;

  printf("{\"event\":\"ready\"}\n");
  fflush(stdout);
  char line[16];
  if (fgets(line, sizeof line, stdin) == NULL) die("reading the go line", 0);

  pthread_t ids[64];
  unsigned long counts[64];
  double cpu_start = cpu_seconds();
  double start = now_seconds();
  deadline = start + seconds;
  for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, sign_loop, &counts[i]);
  unsigned long ops = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(ids[i], NULL);
    ops += counts[i];
  }
  double elapsed = now_seconds() - start;
  double cpu = cpu_seconds() - cpu_start;
  printf("{\"ops\":%lu,\"seconds\":%.6f,\"cpu\":%.6f,\"threads\":%d}\n", ops, elapsed, cpu, threads);
  fflush(stdout);
  /* Keep the connection open until the parent has sampled the server's CPU. */
  if (fgets(line, sizeof line, stdin) == NULL) line[0] = 0;
  p11->C_CloseSession(setup);
  p11->C_Finalize(NULL);
  return 0;
}
