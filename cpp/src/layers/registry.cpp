// From a layer's Config to the layer: the one switch over kinds.
#include "neuraxis/layer.hpp"

namespace neuraxis {

idx numel(const Shape& s) {
    idx n = 1;
    for (idx d : s) n *= d;
    return n;
}

std::string shape_str(const Shape& s) {
    std::string out = "(";
    for (std::size_t i = 0; i < s.size(); ++i)
        out += (i ? ", " : "") + std::to_string(s[i]);
    return out + (s.size() == 1 ? ",)" : ")");
}

template <class T>
std::unique_ptr<Layer<T>> make_layer(const Config& c, const Shape& in, int index) {
    const std::string kind = c.kind();
    std::unique_ptr<Layer<T>> layer;
    if (kind == "dense")
        layer = make_dense<T>(c, in);
    else if (kind == "activation")
        layer = make_activation<T>(c, in);
    else if (kind == "dropout")
        layer = make_dropout<T>(c, in, index);
    else if (kind == "flatten" || kind == "reshape")
        layer = make_reshape<T>(c, in);
    else if (kind == "conv2d" || kind == "max_pool2d" || kind == "avg_pool2d" ||
             kind == "conv2d_transpose")
        layer = make_conv<T>(c, in);
    else if (kind == "simple_rnn" || kind == "lstm" || kind == "gru")
        layer = make_recurrent<T>(c, in, index);
    else if (kind == "bidirectional")
        layer = make_bidirectional<T>(c, in, index);
    else if (kind == "masking")
        layer = make_masking<T>(c, in);
    else if (kind == "batch_norm")
        layer = make_batch_norm<T>(c, in);
    else if (kind == "conv1d" || kind == "max_pool1d" || kind == "avg_pool1d" ||
             kind == "global_max_pool" || kind == "global_avg_pool")
        layer = make_conv<T>(c, in);
    else if (kind == "zero_pad1d" || kind == "zero_pad2d" || kind == "crop1d" ||
             kind == "crop2d" || kind == "upsample1d" || kind == "upsample2d")
        layer = make_spatial<T>(c, in);
    else if (kind == "embedding")
        layer = make_embedding<T>(c, in);
    else
        c.fail("unknown layer kind '" + kind + "'; expected one of " +
               join_names(names_of("layers")));
    c.check_all_read();
    return layer;
}

template std::unique_ptr<Layer<float>> make_layer(const Config&, const Shape&, int);
template std::unique_ptr<Layer<double>> make_layer(const Config&, const Shape&, int);

}  // namespace neuraxis
