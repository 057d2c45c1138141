// The test top of the spike-op cores (tests/test_rtl_spike_ops.py, spike_ops_tb.cpp): one
// instance of each of hqflow_add, hqflow_tokens, hqflow_maxpool, hqflow_ssa and four of hqflow_head
// (uniform, po2, po2z, fp32 weights), selected by `sel`, behind one generic interface: three read
// ports a, b, c sharing abc_addr (the testbench models the RAMs: data one cycle after the address)
// and one write port. The sizes are the top's parameters (-G); ROM and table files are read from the
// working folder (head_<u|p|z|f>_weights.mem, head_<u|p|z|f>_bias.mem).
module spike_ops_tb #(
    parameter ADD_SIZE = 12, ADD_A_BITS = 1, ADD_B_BITS = 3, ADD_OUT_BITS = 4,
    parameter TOK_C = 3, TOK_H = 2, TOK_W = 3, TOK_BITS = 2,
    parameter MP_C = 2, MP_H = 5, MP_W = 6,
    parameter SSA_N = 6, SSA_D = 8, SSA_HEADS = 2, SSA_ACC_BITS = 6, SSA_V_BITS = 16, SSA_F = 3, SSA_T = 3,
    parameter HEAD_N = 3, HEAD_C = 10, HEAD_K = 5, HEAD_IN_BITS = 2, HEAD_SUM_BITS = 6,
    parameter HEAD_ACC_BITS = 44, HEAD_LOGIT_BITS = 48, HEAD_BF = 3,
    parameter HU_BITS = 4, HU_ZP = 7, HU_P = 4,
    parameter HP_BITS = 4, HP_P = 4,
    parameter HZ_BITS = 3, HZ_P = 3,
    parameter HF_P = 2
) (
    input  wire        clk,
    input  wire        rst,
    input  wire [3:0]  sel,        // 0 add, 1 tokens, 2 maxpool, 3 ssa, 4..7 head u, p, z, f
    input  wire        start,
    input  wire        first,
    input  wire        last,
    input  wire [63:0] bias,       // ssa constants
    input  wire [63:0] thr,
    input  wire [1:0]  sign,
    output reg         busy,
    output reg         done,
    output reg  [31:0] abc_addr,
    input  wire [63:0] a_data,
    input  wire [63:0] b_data,
    input  wire [63:0] c_data,
    output reg         out_we,
    output reg  [31:0] out_addr,
    output reg  [63:0] out_data
);
    wire [7:0]  bz, dn, we;
    // each core's ports, widened
    wire [31:0] ra_n [0:7];
    wire [31:0] wa_n [0:7];
    wire [63:0] wd_n [0:7];

    wire [$clog2(ADD_SIZE)-1:0] add_ra, add_wa;
    wire [ADD_OUT_BITS-1:0] add_wd;
    hqflow_add #(.SIZE(ADD_SIZE), .A_BITS(ADD_A_BITS), .B_BITS(ADD_B_BITS), .OUT_BITS(ADD_OUT_BITS)) u_add (
        .clk(clk), .rst(rst), .start(start && sel == 0), .busy(bz[0]), .done(dn[0]),
        .ab_addr(add_ra), .a_data(a_data[ADD_A_BITS-1:0]), .b_data(b_data[ADD_B_BITS-1:0]),
        .out_we(we[0]), .out_addr(add_wa), .out_data(add_wd));
    assign ra_n[0] = add_ra; assign wa_n[0] = add_wa; assign wd_n[0] = add_wd;

    wire [$clog2(TOK_C * TOK_H * TOK_W)-1:0] tok_ra, tok_wa;
    wire [TOK_BITS-1:0] tok_wd;
    hqflow_tokens #(.C(TOK_C), .H(TOK_H), .W(TOK_W), .BITS(TOK_BITS)) u_tokens (
        .clk(clk), .rst(rst), .start(start && sel == 1), .busy(bz[1]), .done(dn[1]),
        .x_addr(tok_ra), .x_data(a_data[TOK_BITS-1:0]), .out_we(we[1]), .out_addr(tok_wa), .out_data(tok_wd));
    assign ra_n[1] = tok_ra; assign wa_n[1] = tok_wa; assign wd_n[1] = tok_wd;

    wire [$clog2(MP_C * MP_H * MP_W)-1:0] mp_ra;
    wire [$clog2(MP_C * ((MP_H - 1) / 2 + 1) * ((MP_W - 1) / 2 + 1))-1:0] mp_wa;
    wire mp_wd;
    hqflow_maxpool #(.C(MP_C), .H(MP_H), .W(MP_W)) u_maxpool (
        .clk(clk), .rst(rst), .start(start && sel == 2), .busy(bz[2]), .done(dn[2]),
        .x_addr(mp_ra), .x_data(a_data[0]), .out_we(we[2]), .out_addr(mp_wa), .out_data(mp_wd));
    assign ra_n[2] = mp_ra; assign wa_n[2] = mp_wa; assign wd_n[2] = mp_wd;

    wire [$clog2(SSA_N * SSA_D)-1:0] ssa_ra, ssa_wa;
    wire ssa_wd;
    hqflow_ssa #(.N(SSA_N), .D(SSA_D), .HEADS(SSA_HEADS), .ACC_BITS(SSA_ACC_BITS), .V_BITS(SSA_V_BITS),
                 .F(SSA_F), .T(SSA_T)) u_ssa (
        .clk(clk), .rst(rst), .start(start && sel == 3), .first(first), .busy(bz[3]), .done(dn[3]),
        .bias(bias[SSA_V_BITS-1:0]), .thr(thr[SSA_V_BITS-1:0]), .sign(sign),
        .qkv_addr(ssa_ra), .q_data(a_data[0]), .k_data(b_data[0]), .v_data(c_data[0]),
        .out_we(we[3]), .out_addr(ssa_wa), .out_data(ssa_wd));
    assign ra_n[3] = ssa_ra; assign wa_n[3] = ssa_wa; assign wd_n[3] = ssa_wd;

`define HQFLOW_TB_HEAD(NAME, IDX, B, S, Z, ZPV, PV, FILE) \
    wire [$clog2(HEAD_N * HEAD_C)-1:0] NAME``_ra; \
    wire [$clog2(HEAD_K)-1:0] NAME``_wa; \
    wire [HEAD_LOGIT_BITS-1:0] NAME``_wd; \
    hqflow_head #(.N(HEAD_N), .C(HEAD_C), .CLASSES(HEAD_K), .P(PV), .BITS(B), .SCHEME(S), \
                  .ZERO_LEVEL(Z), .ZP(ZPV), .IN_BITS(HEAD_IN_BITS), .SUM_BITS(HEAD_SUM_BITS), \
                  .ACC_BITS(HEAD_ACC_BITS), .LOGIT_BITS(HEAD_LOGIT_BITS), .BF(HEAD_BF), \
                  .ROM_FILE({FILE, "_weights.mem"}), .BIAS_FILE({FILE, "_bias.mem"})) NAME ( \
        .clk(clk), .rst(rst), .start(start && sel == IDX), .first(first), .last(last), .busy(bz[IDX]), \
        .done(dn[IDX]), .x_addr(NAME``_ra), .x_data(a_data[HEAD_IN_BITS-1:0]), .out_we(we[IDX]), \
        .out_addr(NAME``_wa), .out_data(NAME``_wd)); \
    assign ra_n[IDX] = NAME``_ra; assign wa_n[IDX] = NAME``_wa; assign wd_n[IDX] = NAME``_wd;

    `HQFLOW_TB_HEAD(head_u, 4, HU_BITS, 0, 0, HU_ZP, HU_P, "head_u")
    `HQFLOW_TB_HEAD(head_p, 5, HP_BITS, 1, 0, 0, HP_P, "head_p")
    `HQFLOW_TB_HEAD(head_z, 6, HZ_BITS, 1, 1, 0, HZ_P, "head_z")
    `HQFLOW_TB_HEAD(head_f, 7, 32, 2, 0, 0, HF_P, "head_f")

    always @* begin
        busy = bz[sel[2:0]];
        done = dn[sel[2:0]];
        abc_addr = ra_n[sel[2:0]];
        out_we = we[sel[2:0]];
        out_addr = wa_n[sel[2:0]];
        out_data = wd_n[sel[2:0]];
    end
endmodule
