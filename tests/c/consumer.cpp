// C++ consumer of include/infogravity.h: RAII ownership of the handle, the same scenario as
// consumer.c (prints the same lines), then "C++ OK".
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "infogravity.h"
#include "scenario.h"

namespace {

struct Free {
    void operator()(IgProcessor* p) const noexcept { ig_processor_free(p); }
};
using Processor = std::unique_ptr<IgProcessor, Free>;

void check(IgStatus st, const char* what) {
    if (st != IG_STATUS_OK)
        throw std::runtime_error(std::string(what) + ": " + ig_status_str(st) + ": " +
                                 ig_last_error());
}

Processor make(const char* json) {
    IgProcessor* raw = nullptr;
    check(ig_processor_new(json, SC_VOCAB, &raw), "new");
    return Processor(raw);
}

void run(const char* json, uint64_t seq) {
    Processor p = make(json);
    IgSeqParams sp;
    ig_seq_params_init(&sp);
    const uint32_t anchors[3] = {10, 20, 30};
    sp.seed = 1234 + seq;
    sp.anchors = anchors;
    sp.n_anchors = 3;
    sp.has_context_gain = 1;
    sp.context_gain = 1.5f;
    check(ig_processor_begin(p.get(), seq, &sp, nullptr), "begin");
    std::vector<float> row(SC_VOCAB);
    for (uint32_t i = 0; i < SC_STEPS; i++) {
        sc_row(seq, i, row.data());
        IgStepReport r;
        ig_step_report_init(&r);
        check(ig_processor_step(p.get(), seq, row.data(), IG_DTYPE_F32, row.size(),
                                IG_MODE_SAMPLE, &r),
              "step");
        std::printf("seq %llu step %u token %lld H %.5f T %.5f regime %u flags %u\n",
                    (unsigned long long)seq, r.step, (long long)r.token, r.entropy,
                    r.temperature, r.regime, r.flags);
        check(ig_processor_accept(p.get(), seq, static_cast<uint32_t>(r.token)), "accept");
    }
    check(ig_processor_end(p.get(), seq), "end");
}

}  // namespace

int main() {
    try {
        if (ig_version_number() != IG_VERSION_NUMBER) throw std::runtime_error("version");
        run("{\"preset\":\"neutral\"}", 1);
        run("{\"preset\":\"balanced\"}", 2);
        run("{\"preset\":\"factual\",\"sampler\":{\"top_k\":40,\"top_p\":0.9}}", 3);
        // An error surfaces as an exception with the library's message.
        try {
            Processor bad = make("{\"sampler\":{\"min_p\":7}}");
            std::printf("FAIL: bad config accepted\n");
            return 1;
        } catch (const std::runtime_error& e) {
            if (std::string(e.what()).find("sampler.min_p") == std::string::npos) {
                std::printf("FAIL: message %s\n", e.what());
                return 1;
            }
        }
    } catch (const std::exception& e) {
        std::printf("FAIL: %s\n", e.what());
        return 1;
    }
    std::printf("C++ OK\n");
    return 0;
}
