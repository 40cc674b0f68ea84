// operators WHAT: the C++ allocation operators as a program sees them
// (tests/integration/cxx.bats). Every WHAT prints what a program can
// observe of the operators and nothing that depends on the allocator
// (no address, no usable size), so that its stdout is the same with
// libstdc++'s operators over glibc's malloc and with memalloc's.
//   usable         new char[100]: malloc_usable_size >= 100, then delete[]
//   aligned        over-aligned types and explicit aligned new/delete
//   nothrow        nothrow new of an impossible size: nullptr
//   throw          throwing new of an impossible size: std::bad_alloc
//   handler        a new-handler that frees a reserve, then uninstalls
//                  itself, around each form of new of an impossible size
//   handler-frees  a new-handler that frees a reserve, after which the
//                  retry succeeds (RLIMIT_AS makes the first try fail)
//   workload       containers, strings, polymorphic objects (sized
//                  deletes), arrays with cookies, aligned types, nothrow
//                  and failing new, exceptions: every block released as
//                  it was allocated (clean under the check modes)
// Built with -O0 -g -fsized-deallocation -std=c++17. Exit status 2: bad
// arguments; 3: the test could not be set up.
#include <malloc.h>
#include <sys/resource.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

// An impossible size, through a volatile so that the compiler cannot see it.
static volatile size_t huge_size = SIZE_MAX / 2;

static bool aligned_to(const void *p, size_t a) {
    return reinterpret_cast<uintptr_t>(p) % a == 0;
}

struct alignas(64) A64 {
    char c[72];
};
struct alignas(256) A256 {
    char c[300];
    A256() { memset(c, 1, sizeof c); }
};
struct alignas(4096) A4k {
    int x = 7;
};

static int usable() {
    // several of each: the first of a size may take another path than
    // the next ones
    enum { N = 8 };
    char *a[N];
    void *o[N];
    int ok_a = 0, ok_o = 0;
    for (int i = 0; i < N; i++) {
        a[i] = new char[100];
        memset(a[i], 'x', 100);
        ok_a += malloc_usable_size(a[i]) >= 100;
        o[i] = ::operator new(100);
        memset(o[i], 'y', 100);
        ok_o += malloc_usable_size(o[i]) >= 100;
    }
    int intact = 0;
    for (int i = 0; i < N; i++) {
        intact += a[i][99] == 'x' && static_cast<char *>(o[i])[99] == 'y';
        delete[] a[i];
        ::operator delete(o[i], 100);
    }
    printf("new char[100]: malloc_usable_size >= 100 for %d of %d\n", ok_a, N);
    printf("operator new(100): malloc_usable_size >= 100 for %d of %d\n", ok_o, N);
    printf("intact: %d of %d; deleted\n", intact, N);
    return 0;
}

static int aligned() {
    enum { N = 20 };
    int ok64 = 0, ok256 = 0, ok256a = 0, ok4k = 0, okx = 0, oknt = 0;
    A64 *a64[N];
    A256 *a256[N], *arr[N];
    A4k *a4k[N];
    void *x[N], *nt[N];
    for (int i = 0; i < N; i++) {
        ok64 += aligned_to(a64[i] = new A64, 64);
        ok256 += aligned_to(a256[i] = new A256, 256);
        ok256a += aligned_to(arr[i] = new A256[1 + i % 4], 256);
        ok4k += aligned_to(a4k[i] = new A4k, 4096);
        size_t al = size_t(32) << (i % 8); // 32 .. 4096
        okx += aligned_to(x[i] = ::operator new(24 + i * 40, std::align_val_t(al)), al);
        nt[i] = ::operator new[](1000, std::align_val_t(512), std::nothrow);
        oknt += nt[i] && aligned_to(nt[i], 512);
    }
    int vals = 0;
    for (int i = 0; i < N; i++) {
        vals += a256[i]->c[299] + arr[i][0].c[0] + a4k[i]->x;
        delete a64[i];
        delete a256[i];
        delete[] arr[i];
        delete a4k[i];
        ::operator delete(x[i], std::align_val_t(size_t(32) << (i % 8)));
        ::operator delete[](nt[i], std::align_val_t(512));
    }
    printf("new A64 (alignas 64): %d of %d aligned\n", ok64, N);
    printf("new A256 (alignas 256): %d of %d aligned\n", ok256, N);
    printf("new A256[k]: %d of %d aligned\n", ok256a, N);
    printf("new A4k (alignas 4096): %d of %d aligned\n", ok4k, N);
    printf("operator new(n, align_val_t(32..4096)): %d of %d aligned\n", okx, N);
    printf("operator new[](1000, align_val_t(512), nothrow): %d of %d aligned\n", oknt, N);
    printf("values: %d\n", vals);
    std::vector<A256> v(10);
    v.resize(100);
    printf("vector<A256>: data %s\n", aligned_to(v.data(), 256) ? "aligned" : "NOT aligned");
    return 0;
}

static const char *what(const void *p) {
    return p ? "a block" : "nullptr";
}

static int nothrow_new() {
    size_t n = huge_size;
    char *a = new (std::nothrow) char[n];
    printf("new (nothrow) char[huge]: %s\n", what(a));
    void *b = ::operator new(n, std::nothrow);
    printf("operator new(huge, nothrow): %s\n", what(b));
    void *c = ::operator new[](n, std::nothrow);
    printf("operator new[](huge, nothrow): %s\n", what(c));
    void *d = ::operator new(n, std::align_val_t(64), std::nothrow);
    printf("operator new(huge, align_val_t(64), nothrow): %s\n", what(d));
    A256 *e = new (std::nothrow) A256[n / sizeof(A256) / 2];
    printf("new (nothrow) A256[huge / 512]: %s\n", what(e));
    // a possible size still works
    char *f = new (std::nothrow) char[10];
    printf("new (nothrow) char[10]: %s\n", what(f));
    delete[] f;
    return a || b || c || d || e ? 1 : 0;
}

// Run f, which news an impossible size; print what came of it.
template <class F> static void try_new(const char *name, F f) {
    try {
        void *p = f();
        printf("%s: %s, no exception\n", name, what(p));
    } catch (const std::bad_alloc &e) {
        printf("%s: caught %s\n", name, e.what());
    }
}

static int throw_new() {
    try_new("new char[huge]", [] { return static_cast<void *>(new char[huge_size]); });
    try_new("operator new(huge)", [] { return ::operator new(huge_size); });
    try_new("operator new[](huge)", [] { return ::operator new[](huge_size); });
    try_new("operator new(huge, align_val_t(256))",
            [] { return ::operator new(huge_size, std::align_val_t(256)); });
    try_new("new A256[huge / 512]",
            [] { return static_cast<void *>(new A256[huge_size / sizeof(A256) / 2]); });
    return 0;
}

static int handler_calls;
static char *reserve;

// The first call frees the reserve (new tries again); the next one
// uninstalls the handler (new tries again, then gives up).
static void handler() {
    handler_calls++;
    if (reserve) {
        delete[] reserve;
        reserve = nullptr;
    } else {
        std::set_new_handler(nullptr);
    }
}

template <class F> static void with_handler(const char *name, F f) {
    handler_calls = 0;
    reserve = new char[1 << 20];
    std::set_new_handler(handler);
    try_new(name, f);
    printf("  new-handler called %d time(s); reserve %s; handler %s\n", handler_calls,
           reserve ? "kept" : "freed", std::get_new_handler() ? "installed" : "uninstalled");
    delete[] reserve;
    reserve = nullptr;
    std::set_new_handler(nullptr);
}

static int handler_new() {
    with_handler("new char[huge]", [] { return static_cast<void *>(new char[huge_size]); });
    with_handler("operator new(huge)", [] { return ::operator new(huge_size); });
    with_handler("operator new(huge, align_val_t(64))",
                 [] { return ::operator new(huge_size, std::align_val_t(64)); });
    with_handler("new (nothrow) char[huge]",
                 [] { return static_cast<void *>(new (std::nothrow) char[huge_size]); });
    with_handler("operator new(huge, align_val_t(64), nothrow)",
                 [] { return ::operator new(huge_size, std::align_val_t(64), std::nothrow); });
    return 0;
}

// Under an address-space limit that leaves room for one big block, the
// reserve takes it: new of another big block fails until the handler
// frees the reserve.
static void freeing_handler() {
    handler_calls++;
    delete[] reserve;
    reserve = nullptr;
    std::set_new_handler(nullptr);
}

static int handler_frees() {
    const size_t big = size_t(256) << 20;
    // Touch the small-block machinery before the limit.
    delete new std::string(100, 'x');
    reserve = new char[big];
    struct rlimit rl;
    char line[512];
    unsigned long vm_kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 3;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %lu kB", &vm_kb) == 1) break;
    fclose(f);
    if (!vm_kb) return 3;
    // Room for half a big block more than what is mapped now.
    rl.rlim_cur = rl.rlim_max = vm_kb * 1024 + big / 2;
    if (setrlimit(RLIMIT_AS, &rl) != 0) return 3;
    std::set_new_handler(freeing_handler);
    try {
        char *p = new char[big - 4096];
        p[0] = p[big - 4097] = 1;
        printf("new char[256 MiB - 4 KiB]: a block after %d new-handler call(s); reserve %s\n",
               handler_calls, reserve ? "kept" : "freed");
        delete[] p;
    } catch (const std::bad_alloc &e) {
        printf("new char[256 MiB - 4 KiB]: caught %s after %d new-handler call(s)\n", e.what(),
               handler_calls);
    }
    return 0;
}

// ---- workload: every block released as it was allocated ----

struct Shape {
    virtual ~Shape() = default;
    virtual long area() const = 0;
};
struct Rect : Shape {
    long w, h;
    Rect(long a, long b) : w(a), h(b) {}
    long area() const override { return w * h; }
};
struct Poly : Shape {
    std::vector<long> pts;
    char name[40];
    explicit Poly(long n) : pts(static_cast<size_t>(n % 17 + 1), n) {
        snprintf(name, sizeof name, "poly-%ld", n);
    }
    long area() const override { return static_cast<long>(pts.size()) * pts[0]; }
};
struct Counted {
    long v;
    Counted() : v(3) {}
    ~Counted() { v = 0; }
};

static int workload() {
    unsigned long sum = 0;
    for (int round = 0; round < 3; round++) {
        // polymorphic objects: the sized delete of each dynamic type
        std::vector<Shape *> shapes;
        for (long i = 0; i < 3000; i++) {
            if (i % 3)
                shapes.push_back(new Rect(i, i % 7));
            else
                shapes.push_back(new Poly(i));
        }
        for (Shape *s : shapes) sum += static_cast<unsigned long>(s->area());
        for (Shape *s : shapes) delete s;
        // arrays with a cookie (non-trivial destructor) and without
        for (int i = 1; i < 200; i++) {
            Counted *c = new Counted[i];
            sum += static_cast<unsigned long>(c[i - 1].v);
            delete[] c;
            int *ints = new int[i * 3]();
            sum += static_cast<unsigned long>(ints[i]);
            delete[] ints;
        }
        // containers and strings, growing and shrinking
        std::map<std::string, std::vector<int>> m;
        std::unordered_map<int, std::string> u;
        for (int i = 0; i < 5000; i++) {
            std::string k = "key" + std::to_string(i % 701) + std::string(i % 13, 'z');
            m[k].push_back(i);
            u[i % 997] += k.substr(0, 5);
        }
        for (auto &kv : m) sum += kv.first.size() * kv.second.size();
        for (auto &kv : u) sum += kv.second.size();
        // shared and unique pointers, over-aligned objects in containers
        auto sp = std::make_shared<std::vector<A256>>(33);
        std::unique_ptr<A4k> up(new A4k);
        std::unique_ptr<A64[]> ua(new A64[9]);
        sum += static_cast<unsigned long>(sp->size() + up->x) + aligned_to(ua.get(), 64);
        // nothrow new, and a new that fails and throws
        char *nt = new (std::nothrow) char[777];
        sum += nt != nullptr;
        delete[] nt;
        try {
            char *p = new char[huge_size];
            delete[] p;
        } catch (const std::bad_alloc &) {
            sum += 1000;
        }
        // exceptions, whose objects the C++ runtime allocates
        try {
            throw std::runtime_error(std::string(300, 'e'));
        } catch (const std::exception &e) {
            sum += strlen(e.what());
        }
        // malloc and free beside them
        char *c = static_cast<char *>(malloc(5000));
        memset(c, 1, 5000);
        c = static_cast<char *>(realloc(c, 9000));
        sum += static_cast<unsigned long>(c[4999]);
        free(c);
    }
    printf("workload checksum: %lu\n", sum);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr,
                "usage: operators usable|aligned|nothrow|throw|handler|handler-frees|workload\n");
        return 2;
    }
    const char *w = argv[1];
    if (!strcmp(w, "usable")) return usable();
    if (!strcmp(w, "aligned")) return aligned();
    if (!strcmp(w, "nothrow")) return nothrow_new();
    if (!strcmp(w, "throw")) return throw_new();
    if (!strcmp(w, "handler")) return handler_new();
    if (!strcmp(w, "handler-frees")) return handler_frees();
    if (!strcmp(w, "workload")) return workload();
    fprintf(stderr, "operators: unknown %s\n", w);
    return 2;
}
