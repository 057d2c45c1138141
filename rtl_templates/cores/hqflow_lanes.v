// hqflow weight lanes: P products x * w_eff of one input value x and P weight codes, per cycle.
//
// Codes are the ROM codes of hqflow.numerics.rom (BITS bits, lane p in bits [p*BITS, (p+1)*BITS)):
//   SCHEME 0  uniform-b   w_eff = code - ZP                     a (BITS+1) x (X_BITS+1) multiply
//   SCHEME 1  po2(z)-b    code = [neg : 1][shift : BITS-1]      w_eff = (-1)^neg << shift,
//                         ZERO_LEVEL: the all-ones shift is 0    a shift and a negation, no multiply
//   SCHEME 2  fp32        code = w_eff, 32-bit two's complement  a 32 x (X_BITS+1) multiply
// x is unsigned (X_BITS), products are ACC_BITS two's complement (exact: |x w_eff| <= acc_bound).
// Spike inputs (X_BITS 1) select w_eff or 0 in every scheme: no multiplier (and no DSP48) at all.
// `define HQFLOW_MUT_PO2_ZERO (a mutation control for the tests) takes shift 0 as the po2z zero code.

module hqflow_lane_uniform #(parameter integer BITS = 8, ZP = 0, X_BITS = 1, ACC_BITS = 32) (
    input  wire [BITS-1:0] code,
    input  wire [X_BITS-1:0] x,
    output wire signed [ACC_BITS-1:0] prod
);
    wire signed [BITS+1:0] w = $signed({2'b00, code}) - ZP;   // w_eff in [-(2^b - 1), 2^b - 1]
    wire signed [X_BITS:0] xs = $signed({1'b0, x});
    wire signed [BITS+X_BITS+2:0] p = X_BITS == 1 ? (x[0] ? w : 0) : w * xs;   // a spike gates w
    assign prod = p;
endmodule

module hqflow_lane_po2 #(parameter integer BITS = 4, ZERO_LEVEL = 0, X_BITS = 1, ACC_BITS = 32) (
    input  wire [BITS-1:0] code,
    input  wire [X_BITS-1:0] x,
    output wire signed [ACC_BITS-1:0] prod
);
    localparam [BITS-2:0] FIELD = {(BITS-1){1'b1}};
    wire [BITS-2:0] shift = code[BITS-2:0];
`ifdef HQFLOW_MUT_PO2_ZERO
    wire is_zero = (ZERO_LEVEL != 0) && (shift == 0);      // the zero code taken as shift 0
`else
    wire is_zero = (ZERO_LEVEL != 0) && (shift == FIELD);
`endif
    wire [ACC_BITS-1:0] magnitude = {{(ACC_BITS > X_BITS ? ACC_BITS - X_BITS : 1){1'b0}}, x} << shift;
    // a spike (x = 1): -(1 << shift) is the ones from bit `shift` up, bit by bit (no carry chain)
    wire [ACC_BITS-1:0] spike_w;
    genvar kb;
    generate
        for (kb = 0; kb < ACC_BITS; kb = kb + 1) begin : spike_bit
            assign spike_w[kb] = x[0] && (code[BITS-1] ? kb >= shift : kb == shift);
        end
    endgenerate
    assign prod = is_zero ? {ACC_BITS{1'b0}} : X_BITS == 1 ? spike_w : (code[BITS-1] ? -magnitude : magnitude);
endmodule

module hqflow_lane_fixed #(parameter integer X_BITS = 1, ACC_BITS = 64) (
    input  wire [31:0] code,
    input  wire [X_BITS-1:0] x,
    output wire signed [ACC_BITS-1:0] prod
);
    wire signed [31:0] w = code;
    wire signed [X_BITS:0] xs = $signed({1'b0, x});
    wire signed [X_BITS+32:0] p = X_BITS == 1 ? (x[0] ? w : 0) : w * xs;       // a spike gates w
    assign prod = p;
endmodule

// P lanes of one scheme over the P codes `codes` (lane p: bits [p*BITS, (p+1)*BITS)); lanes whose
// output channel is >= O (the padding of the last group) give 0 (`live` bit p clear).
module hqflow_lanes #(parameter integer P = 1, BITS = 8, SCHEME = 0, ZERO_LEVEL = 0, ZP = 0,
                      X_BITS = 1, ACC_BITS = 32) (
    input  wire [P*BITS-1:0] codes,
    input  wire [P-1:0] live,
    input  wire [X_BITS-1:0] x,
    output wire [P*ACC_BITS-1:0] prods
);
    initial begin  // elaboration-time checks of the parameters
        if (P < 1 || X_BITS < 1 || ACC_BITS < 1 || ACC_BITS > 64)
            $error("hqflow_lanes: P %0d and X_BITS %0d must be >= 1, ACC_BITS %0d in 1..64", P, X_BITS, ACC_BITS);
        if (SCHEME == 0 ? (BITS < 1 || BITS > 32) : SCHEME == 1 ? (BITS < 2 || BITS > 32) : (SCHEME != 2 || BITS != 32))
            $error("hqflow_lanes: SCHEME %0d, BITS %0d (uniform 0: 1..32, po2 1: 2..32, fp32 2: 32)", SCHEME, BITS);
    end
    genvar p;
    generate
        for (p = 0; p < P; p = p + 1) begin : lane
            wire signed [ACC_BITS-1:0] prod;
            if (SCHEME == 0) begin : u
                hqflow_lane_uniform #(.BITS(BITS), .ZP(ZP), .X_BITS(X_BITS), .ACC_BITS(ACC_BITS))
                    l (.code(codes[p*BITS +: BITS]), .x(x), .prod(prod));
            end else if (SCHEME == 1) begin : s
                hqflow_lane_po2 #(.BITS(BITS), .ZERO_LEVEL(ZERO_LEVEL), .X_BITS(X_BITS), .ACC_BITS(ACC_BITS))
                    l (.code(codes[p*BITS +: BITS]), .x(x), .prod(prod));
            end else begin : f
                hqflow_lane_fixed #(.X_BITS(X_BITS), .ACC_BITS(ACC_BITS))
                    l (.code(codes[p*BITS +: 32]), .x(x), .prod(prod));
            end
            assign prods[p*ACC_BITS +: ACC_BITS] = live[p] ? prod : {ACC_BITS{1'b0}};
        end
    endgenerate
endmodule

// p = x * w (x unsigned X_BITS, w signed W_BITS, p OUT_BITS two's complement: exact where the product
// fits) as a pipelined tree in LUTs: rows x[k] ? w << k : 0, added in pairs level by level (LEVELS =
// clog2(X_BITS) levels), a register after the last level and after every second one before it:
// LATENCY = ceil(LEVELS / 2) cycles (hqflow_mul_latency in Python: stream_base.mul_latency).
module hqflow_mul #(parameter integer X_BITS = 2, W_BITS = 2, OUT_BITS = 32) (
    input  wire clk,
    input  wire [X_BITS-1:0] x,
    input  wire signed [W_BITS-1:0] w,
    output wire [OUT_BITS-1:0] p
);
    localparam integer LEVELS = X_BITS > 1 ? $clog2(X_BITS) : 0;
    localparam integer N0 = 1 << LEVELS;
    initial if (X_BITS < 2) $error("hqflow_mul: X_BITS %0d (a 1-bit x gates w: no tree)", X_BITS);
    wire [OUT_BITS-1:0] w_wide = {{(OUT_BITS > W_BITS ? OUT_BITS - W_BITS : 1){w[W_BITS-1]}}, w};
    wire [2*N0*OUT_BITS-1:0] tree;      // level l's node k: bits [(2 N0 - 2 (N0 >> l) + k) OUT_BITS, +OUT_BITS)
    genvar l, k;
    generate
        for (k = 0; k < N0; k = k + 1) begin : row
            if (k < X_BITS) begin : bit_row
                assign tree[k*OUT_BITS +: OUT_BITS] = x[k] ? w_wide << k : {OUT_BITS{1'b0}};
            end else begin : pad_row
                assign tree[k*OUT_BITS +: OUT_BITS] = {OUT_BITS{1'b0}};
            end
        end
        for (l = 1; l <= LEVELS; l = l + 1) begin : level
            for (k = 0; k < (N0 >> l); k = k + 1) begin : node
                wire [OUT_BITS-1:0] sum = tree[(2*N0 - 2*(N0 >> (l-1)) + 2*k)*OUT_BITS +: OUT_BITS]
                                        + tree[(2*N0 - 2*(N0 >> (l-1)) + 2*k + 1)*OUT_BITS +: OUT_BITS];
                if ((LEVELS - l) % 2 == 0) begin : registered
                    reg [OUT_BITS-1:0] r;
                    always @(posedge clk) r <= sum;
                    assign tree[(2*N0 - 2*(N0 >> l) + k)*OUT_BITS +: OUT_BITS] = r;
                end else begin : wired
                    assign tree[(2*N0 - 2*(N0 >> l) + k)*OUT_BITS +: OUT_BITS] = sum;
                end
            end
        end
    endgenerate
    assign p = tree[(2*N0 - 2)*OUT_BITS +: OUT_BITS];
endmodule

// P lanes of products x * w_eff, pipelined: the codes decoded into w_eff (hqflow_lanes, x = 1) and
// registered with x, then per lane MUL_TREE 1: hqflow_mul (a tree in LUTs), 0: x * w_eff (for a DSP
// multiplier) and as many registers after it: LATENCY = 1 + ceil(clog2(X_BITS) / 2) cycles from codes and
// x to prods either way (stream_base.mul_latency). The lanes past `live` give 0: `live` goes down the
// pipeline beside the product and gates it at the end (a lane whose codes are constant, a dead lane of the
// last group, then multiplies a constant: synthesis folds it, no DSP).
module hqflow_lanes_piped #(parameter integer P = 1, BITS = 8, SCHEME = 0, ZERO_LEVEL = 0, ZP = 0,
                            X_BITS = 2, ACC_BITS = 32, MUL_TREE = 1) (
    input  wire clk,
    input  wire [P*BITS-1:0] codes,
    input  wire [P-1:0] live,
    input  wire [X_BITS-1:0] x,
    output wire [P*ACC_BITS-1:0] prods
);
    // w_eff's width: uniform BITS + 2, po2 (+- 2^shift) 2^(BITS-1) + 1, fp32 32 bits
    localparam integer WB = SCHEME == 0 ? BITS + 2 : SCHEME == 1 ? (1 << (BITS - 1)) + 1 : 32;
    localparam integer EW = WB < ACC_BITS ? WB : ACC_BITS;
    localparam integer REGS = ($clog2(X_BITS) + 1) / 2;     // the product's registers
    initial if (X_BITS < 2) $error("hqflow_lanes_piped: X_BITS %0d (a 1-bit x gates the weights: hqflow_lanes)", X_BITS);
    wire [P*ACC_BITS-1:0] w_eff;
    hqflow_lanes #(.P(P), .BITS(BITS), .SCHEME(SCHEME), .ZERO_LEVEL(ZERO_LEVEL), .ZP(ZP), .X_BITS(1),
                   .ACC_BITS(ACC_BITS)) decode (.codes(codes), .live({P{1'b1}}), .x(1'b1), .prods(w_eff));
    reg [P*EW-1:0] w_r;
    reg [X_BITS-1:0] x_r;
    reg [(REGS+1)*P-1:0] live_d = 0;    // live, stage r in bits [r P, +P): stage REGS beside the products
    wire [P*ACC_BITS-1:0] raw;          // the products before the gate
    integer q;
    always @(posedge clk) begin
        x_r <= x;
        for (q = 0; q < P; q = q + 1) w_r[q*EW +: EW] <= w_eff[q*ACC_BITS +: EW];
        live_d <= {live_d, live};
    end
    genvar p;
    generate
        for (p = 0; p < P; p = p + 1) begin : lane
            if (MUL_TREE) begin : tree
                hqflow_mul #(.X_BITS(X_BITS), .W_BITS(EW), .OUT_BITS(ACC_BITS)) mul (
                    .clk(clk), .x(x_r), .w(w_r[p*EW +: EW]), .p(raw[p*ACC_BITS +: ACC_BITS]));
            end else begin : dsp
                wire signed [EW-1:0] w = w_r[p*EW +: EW];
                wire signed [X_BITS:0] xs = $signed({1'b0, x_r});
                wire signed [ACC_BITS-1:0] prod = w * xs;
                reg [REGS*ACC_BITS-1:0] pipe;       // stage r in bits [r ACC_BITS, +ACC_BITS)
                always @(posedge clk) pipe <= {pipe, prod};  // (the top stage shifts out)
                assign raw[p*ACC_BITS +: ACC_BITS] = pipe[(REGS-1)*ACC_BITS +: ACC_BITS];
            end
            assign prods[p*ACC_BITS +: ACC_BITS] = live_d[REGS*P + p] ? raw[p*ACC_BITS +: ACC_BITS] : {ACC_BITS{1'b0}};
        end
    endgenerate
endmodule
